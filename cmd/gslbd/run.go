package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// demoConfig is served when gslbd runs without arguments from the
// repository root.
const demoConfig = "testdata/demo/gslbd.yaml"

const usage = `usage: gslbd <command> [flags]

commands:
  serve  -config FILE   run a node
  check  -config FILE   validate the configuration and every zone it names
  drain SITE --reason TEXT [--service NAME] [--for DURATION] [--clients CIDR...] [--force]
                        take a site out of service on every node (admin API)
  undrain SITE [--service NAME] [--clients CIDR...]
                        end a drain
  status [-o json]      the cluster as a node sees it: verdicts, drains, nodes
  version               print the version

Without arguments gslbd serves the demo configuration ` + demoConfig + `.
Run "gslbd <command> -h" for the flags of a command.
`

// hooks lets tests observe a running node. The zero value does nothing.
type hooks struct {
	// ready is called once the node serves, with the addresses it bound.
	ready func(bound)
	// signals, when set, replaces SIGHUP as the source of reload requests.
	reload <-chan struct{}
}

// run is the whole program: it parses args and runs the command.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, h hooks) error {
	if len(args) == 0 {
		if _, err := os.Stat(demoConfig); err != nil {
			return exitError{code: 2, msg: "gslbd: no command given and the demo configuration " + demoConfig +
				" is not here (run from the repository root, or see gslbd -h)"}
		}
		fmt.Fprintf(stderr, "gslbd: serving the demo configuration %s\n", demoConfig)
		return serveCmd(ctx, []string{"-config", demoConfig}, getenv, stdout, stderr, h)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serveCmd(ctx, rest, getenv, stdout, stderr, h)
	case "check":
		return checkCmd(rest, stdout, stderr)
	case "drain":
		return drainCmd(ctx, rest, getenv, stdout, stderr)
	case "undrain":
		return undrainCmd(ctx, rest, getenv, stdout, stderr)
	case "status":
		return statusCmd(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, readBuildInfo())
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return exitError{code: 2, msg: fmt.Sprintf("gslbd: unknown command %q", cmd)}
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gslbd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and turns flag errors into exit status 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError{code: 0}
		}
		return exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return exitError{code: 2, msg: fmt.Sprintf("%s: unexpected arguments: %s", fs.Name(), strings.Join(fs.Args(), " "))}
	}
	return nil
}

// checkCmd validates a configuration, through the same load step as serve,
// and exits 2 listing every problem.
func checkCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	path := fs.String("config", "", "node configuration `file` (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return exitError{code: 2, msg: "gslbd check: -config is required"}
	}
	l, err := load(*path)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	fmt.Fprintf(stdout, "%s: ok: %d zone(s), %d service(s), config hash %s, node %s in site %q\n",
		l.cfg.path, len(l.set.Zones()), len(l.set.Services()), l.set.Hash(), l.cfg.Node.Name, l.cfg.Node.Site)
	return nil
}
