package scenario

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/dnstest"
)

// endpointEnv, when set to "ip:port" in the environment, turns the test
// binary into one service endpoint (see runEndpoint) instead of running
// tests.
const endpointEnv = "GSLBD_SCENARIO_ENDPOINT"

var (
	trials = flag.Int("scenario.trials", envInt("GSLBD_SCENARIO_TRIALS", 3),
		"how many times each failover trial runs (long form: 20 or more)")
	stable = flag.Duration("scenario.stable", envDuration("GSLBD_SCENARIO_STABLE", 10*time.Second),
		"how long every node is polled with nothing failing (long form: 10m)")
	strict = flag.Bool("scenario.strict", false,
		"assert the latency targets (p99 <= 1s to fail over, <= 2s to return) instead of the generous bounds")
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(endpointEnv); addr != "" {
		if err := runEndpoint(addr); err != nil {
			fmt.Fprintln(os.Stderr, "endpoint:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runEndpoint serves GET /healthz with 200 on addr until its standard
// input closes (the test ended) or it is killed. Once it accepts
// connections it writes "ready" and the time it began to, in Unix
// nanoseconds, to standard output.
func runEndpoint(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	accepting := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "scenario endpoint %s\n", addr)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if _, err := fmt.Fprintln(os.Stdout, "ready", accepting.UnixNano()); err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString(0) // returns at EOF
		close(stdinClosed)
	}()
	select {
	case err := <-errc:
		return err
	case <-stdinClosed:
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
}

// The gslbd binary is built once per test binary run, without -race: the
// scenario measures the product as it ships. It is named scenario-node,
// and nothing on its command line says gslbd, so that someone stopping
// their own gslbd by name (pkill gslbd, pgrep -n gslbd) on a shared
// machine does not stop the scenario's nodes as well.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// gslbdBinary returns the path of a freshly built gslbd.
func gslbdBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "scenario-bin-")
		if binErr != nil {
			return
		}
		gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "scenario-node")
		cmd := exec.Command(gobin, "build", "-o", binPath, "github.com/gslbd/gslbd/cmd/gslbd")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/gslbd: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// requireDig returns the path of dig (see [dnstest.RequireTool]).
func requireDig(t *testing.T) string {
	t.Helper()
	return dnstest.RequireTool(t, "dig", "bind9-dnsutils")
}

// envInt and envDuration read a flag's default from the environment. A
// value that does not parse stops the test binary, rather than silently
// running a different scenario than asked for.
func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		badEnv(name, v, err)
	}
	return n
}

func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		badEnv(name, v, err)
	}
	return d
}

func badEnv(name, v string, err error) {
	fmt.Fprintf(os.Stderr, "scenario: %s=%q: %v\n", name, v, err)
	os.Exit(2)
}

// errTimeout marks a bounded wait that ran out.
var errTimeout = errors.New("timed out")
