package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/internal/netprefix"
)

// The operator commands talk to a node's admin API. Where and with which
// token: -admin (or $GSLBD_ADMIN, default 127.0.0.1:5380), and
// -token-file, else $GSLBD_TOKEN, else $GSLBD_TOKEN_FILE. A token file
// holds the bare token. An https:// address is checked against the
// system's roots, or the PEM certificates of -ca-file (or $GSLBD_CA_FILE).
const (
	envCAFile    = "GSLBD_CA_FILE"
	envAdmin     = "GSLBD_ADMIN"
	envToken     = "GSLBD_TOKEN"
	envTokenFile = "GSLBD_TOKEN_FILE"
)

// defaultCLIWait is how long drain and undrain wait for acknowledgements
// unless told otherwise.
const defaultCLIWait = 5 * time.Second

// adminFlags are the operator commands' connection flags.
type adminFlags struct {
	addr, tokenFile *string
	caFile          *string
	getenv          func(string) string
	token           string // set by client
}

// apiFlags adds the connection flags to fs; call client after parsing.
func apiFlags(fs *flag.FlagSet, getenv func(string) string) *adminFlags {
	return &adminFlags{
		addr:      fs.String("admin", orDefault(getenv(envAdmin), defaultAdminListen), "admin API `address` (host:port or URL; or $"+envAdmin+")"),
		tokenFile: fs.String("token-file", "", "`file` holding the admin token (default $"+envToken+", else the file $"+envTokenFile+")"),
		caFile:    fs.String("ca-file", getenv(envCAFile), "PEM `file` of the CA that signed the node's HTTPS certificate (or $"+envCAFile+")"),
		getenv:    getenv,
	}
}

// client returns the admin API client the flags and environment ask for.
func (f *adminFlags) client() (*api.Client, error) {
	file := *f.tokenFile
	switch {
	case file != "":
	case f.getenv(envToken) != "":
		f.token = strings.TrimSpace(f.getenv(envToken))
	default:
		file = f.getenv(envTokenFile)
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		f.token = strings.TrimSpace(string(data))
		if f.token == "" || strings.ContainsAny(f.token, " \t\r\n") {
			return nil, fmt.Errorf("token file %s: want the token alone on one line", file)
		}
	}
	cfg := api.Config{Base: *f.addr, Token: f.token}
	if *f.caFile != "" {
		tc, err := api.LoadCA(*f.caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		cfg.TLS = tc
	}
	return api.New(cfg), nil
}

// fail turns an API or connection error into the command's exit, saying
// how to give a token when the API wanted one and none was given.
func (f *adminFlags) fail(cmd string, err error) error {
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnauthorized && f.token == "" {
		err = fmt.Errorf("no token given (use -token-file, $%s or $%s): %w", envToken, envTokenFile, err)
	}
	return exitError{code: 1, msg: fmt.Sprintf("gslbd %s: %v", cmd, err)}
}

// prefixList is a repeatable flag of client prefixes; each value may
// hold several, separated by commas.
type prefixList []netip.Prefix

func (p *prefixList) String() string { return api.FormatPrefixes(*p) }

func (p *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		pfx, err := netprefix.Parse(f)
		if err != nil {
			return fmt.Errorf("%q is not an address or CIDR prefix", f)
		}
		*p = append(*p, pfx)
	}
	return nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitError{code: 0}
			}
			return nil, exitError{code: 2}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "text", "output `format`: text or json")
}

func checkOutput(cmd, o string) error {
	if o != "text" && o != "json" {
		return exitError{code: 2, msg: fmt.Sprintf("gslbd %s: -o %q: want text or json", cmd, o)}
	}
	return nil
}

const drainUsage = `usage: gslbd drain SITE --reason TEXT [--service NAME] [--for DURATION | --until TIME]
                   [--clients CIDR[,CIDR...]]... [--force] [--wait DURATION] [-o json]

Drain SITE on every node of the cluster: DNS answers pass it over (for one
service, or all of them; for some client prefixes, or everyone) until
"gslbd undrain" or the expiry. A drain that would leave a service with no
healthy site that is not drained is refused unless --force.
`

func drainCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drain", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, drainUsage, "\nflags:\n"); fs.PrintDefaults() }
	conn := apiFlags(fs, getenv)
	reason := fs.String("reason", "", "why, for the audit trail (required)")
	service := fs.String("service", "", "drain only this service `name` (default: every service)")
	forDur := fs.Duration("for", 0, "end the drain by itself after this `duration` (90m, 2h)")
	until := fs.String("until", "", "end the drain by itself at this RFC 3339 `time`")
	var clients prefixList
	fs.Var(&clients, "clients", "drain only for clients in these `prefixes` (repeatable, comma-separated)")
	force := fs.Bool("force", false, "drain even if a service is left with no site able to take traffic")
	wait := fs.Duration("wait", defaultCLIWait, "wait up to this `duration` for the nodes to apply the drain (max 30s)")
	output := outputFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput("drain", *output); err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		fs.Usage()
		return exitError{code: 2, msg: "gslbd drain: want exactly one SITE"}
	case strings.TrimSpace(*reason) == "":
		return exitError{code: 2, msg: "gslbd drain: --reason is required (say why, for the audit trail)"}
	case *forDur != 0 && *until != "":
		return exitError{code: 2, msg: "gslbd drain: give --for or --until, not both"}
	case *forDur < 0:
		return exitError{code: 2, msg: "gslbd drain: --for must be positive"}
	}
	c, err := conn.client()
	if err != nil {
		return exitError{code: 2, msg: "gslbd drain: " + err.Error()}
	}
	body := api.CreateDrain{Site: pos[0], Service: *service, Reason: *reason, Expires: *until, Force: *force, Wait: wait.String()}
	if *forDur > 0 {
		body.For = forDur.String()
	}
	for _, p := range clients {
		body.Clients = append(body.Clients, p.String())
	}
	res, raw, err := c.CreateDrain(ctx, body)
	if err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && len(se.Body.Services) > 0 {
			return exitError{code: 1, msg: fmt.Sprintf("gslbd drain: refused: draining %s would leave no site able to take traffic for %s; add --force to drain anyway",
				pos[0], strings.Join(se.Body.Services, ", "))}
		}
		return conn.fail("drain", err)
	}
	if *output == "json" {
		_, err := stdout.Write(raw)
		return err
	}
	api.WriteCreated(stdout, res)
	return nil
}

const undrainUsage = `usage: gslbd undrain SITE [--service NAME] [--clients CIDR[,CIDR...]]... [--reason TEXT] [--wait DURATION] [-o json]
       gslbd undrain --id ID [--reason TEXT] [--wait DURATION] [-o json]

End a drain on every node of the cluster. SITE, --service and --clients
name the drain exactly as it was made ("gslbd status" lists drains and
their IDs).
`

func undrainCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("undrain", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, undrainUsage, "\nflags:\n"); fs.PrintDefaults() }
	conn := apiFlags(fs, getenv)
	id := fs.String("id", "", "the drain's `ID`, instead of SITE and its scope")
	reason := fs.String("reason", "", "why, for the audit trail")
	service := fs.String("service", "", "the drain's service `name`, if it was made for one")
	var clients prefixList
	fs.Var(&clients, "clients", "the drain's client `prefixes`, if it was made for some")
	wait := fs.Duration("wait", defaultCLIWait, "wait up to this `duration` for the nodes to apply the undrain (max 30s)")
	output := outputFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput("undrain", *output); err != nil {
		return err
	}
	var key drain.Key
	switch {
	case *id != "" && (len(pos) > 0 || *service != "" || len(clients) > 0):
		return exitError{code: 2, msg: "gslbd undrain: give --id or SITE with its scope, not both"}
	case *id == "" && len(pos) != 1:
		fs.Usage()
		return exitError{code: 2, msg: "gslbd undrain: want exactly one SITE (or --id)"}
	case *id == "":
		key = drain.Key{Site: pos[0], Service: *service, Clients: clients}.Normalize()
		*id = key.ID()
	}
	c, err := conn.client()
	if err != nil {
		return exitError{code: 2, msg: "gslbd undrain: " + err.Error()}
	}
	res, raw, err := c.DeleteDrain(ctx, *id, api.DeleteDrain{Reason: *reason, Wait: wait.String()})
	if err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound && key.Site != "" {
			return exitError{code: 1, msg: fmt.Sprintf("gslbd undrain: no drain in force for %s (id %s); \"gslbd status\" lists the drains", key, *id)}
		}
		return conn.fail("undrain", err)
	}
	if *output == "json" {
		_, err := stdout.Write(raw)
		return err
	}
	api.WriteDeleted(stdout, res)
	return nil
}

const statusUsage = `usage: gslbd status [-o json]

Show the node's view of the cluster: services, sites, endpoints and their
verdicts with the reasons, drains in force, and the nodes with their
config hashes.
`

func statusCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage, "\nflags:\n"); fs.PrintDefaults() }
	conn := apiFlags(fs, getenv)
	output := outputFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOutput("status", *output); err != nil {
		return err
	}
	c, err := conn.client()
	if err != nil {
		return exitError{code: 2, msg: "gslbd status: " + err.Error()}
	}
	doc, raw, err := c.Status(ctx)
	if err != nil {
		return conn.fail("status", err)
	}
	if *output == "json" {
		_, err := stdout.Write(raw)
		return err
	}
	api.WriteStatus(stdout, doc)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
