package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fdChildEnv makes the test binary run a test's child (see inFDChild).
const fdChildEnv = "GSLBD_HEALTH_FD_CHILD"

// TestLocalFaultRealExhaustion runs a real Checker with a real HTTP probe
// in a child process whose file-descriptor limit is then lowered below the
// descriptors it has open: every probe fails with "too many open files".
// The endpoint, a real server in the same child, stays healthy throughout
// and must never be judged down; once the limit is restored it comes up.
func TestLocalFaultRealExhaustion(t *testing.T) {
	inFDChild(t, "TestLocalFaultRealExhaustion", "http", exhaustedChild)
}

// inFDChild runs test in a child process of the test binary, with
// fdChildEnv set to kind, where it runs child, and fails unless child
// succeeded.
func inFDChild(t *testing.T, test, kind string, child func() error) {
	t.Helper()
	if os.Getenv(fdChildEnv) == kind {
		if err := child(); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("PASS")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+kind)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestLocalFaultOnLoopConnect: a tcp check whose connects run on the
// event loop, in a child process whose file-descriptor limit is then
// lowered, fails its probes with "too many open files" as the
// goroutine probe does: a fault of this node, which never takes the
// healthy endpoint down, and the endpoint is up again once the limit is
// restored.
func TestLocalFaultOnLoopConnect(t *testing.T) {
	requireLoopConnects(t)
	inFDChild(t, "TestLocalFaultOnLoopConnect", "tcp", exhaustedLoopChild)
}

// exhaustedLoopChild is the child's side of TestLocalFaultOnLoopConnect.
func exhaustedLoopChild() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // out of descriptors too: the queue holds them
				time.Sleep(10 * time.Millisecond)
				continue
			}
			conn.Close()
		}
	}()
	addr, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: addr, Kind: "tcp", Probe: NewTCPProbe(),
		Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 2,
	}}, nil, reg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	until := func(what string, cond func(Status) bool) error {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			st, _ := c.Snapshot().Get("ep")
			if st.State == Down {
				return fmt.Errorf("the healthy endpoint was judged down: %+v", st)
			}
			if cond(st) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not within 5s: %+v", what, st)
			}
		}
	}
	if err := until("up, with 5 connects on the loop", func(st Status) bool { return st.State == Up && loopHandled(c) >= 5 }); err != nil {
		return err
	}

	restore, err := lowerFDLimit()
	if err != nil {
		return err
	}
	handled := loopHandled(c)
	err = until("a local fault", func(st Status) bool {
		return strings.Contains(st.LocalFault, "too many open files") && loopHandled(c) >= handled+10
	})
	if err2 := restore(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	if f := testutil.ToFloat64(c.metrics.probeFailures.WithLabelValues("tcp")); f != 0 {
		return fmt.Errorf("probe failures = %v, want 0: out of descriptors is this node's fault", f)
	}
	return until("up again", func(st Status) bool { return st.State == Up && st.LocalFault == "" })
}

// lowerFDLimit lowers this process's limit of open files to 0: every
// descriptor in use stays usable, and not one more can be opened (the
// kernel refuses a new one numbered at or above the limit). restore sets
// the limit back.
func lowerFDLimit() (restore func() error, err error) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return nil, err
	}
	lowered := syscall.Rlimit{Cur: 0, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		return nil, err
	}
	return func() error { return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }, nil
}

// exhaustedChild is the child's side of TestLocalFaultRealExhaustion.
func exhaustedChild() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	addr, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return err
	}
	probe := NewHTTPProbe(HTTPCheck{Path: "/healthz"})
	if err := runProbe(context.Background(), probe, addr, time.Second); err != nil {
		return fmt.Errorf("probe before the limit: %v", err)
	}

	reg := prometheus.NewRegistry()
	c, err := NewChecker(CheckerConfig{FirstRoundBound: 200 * time.Millisecond}, []Target{{
		ID: "ep", Addr: addr, Kind: "http", Probe: probe,
		Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, Rise: 1, Fall: 2,
	}}, nil, reg)
	if err != nil {
		return err
	}

	restore, err := lowerFDLimit()
	if err != nil {
		return err
	}
	err = runProbe(context.Background(), probe, addr, time.Second)
	if reason, ok := localFault(err); !ok || reason != LocalFileDescriptors || !errors.Is(err, syscall.EMFILE) {
		restore()
		return fmt.Errorf("probe at the limit: %v (local fault %q, %v), want EMFILE, a local fault", err, reason, ok)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := c.Snapshot().Get("ep")
		if st.State == Down {
			restore()
			return fmt.Errorf("the healthy endpoint was judged down: %+v", st)
		}
		if st.LocalFault != "" && c.Snapshot().Ready() {
			if st.State != Unknown || c.Snapshot().States()["ep"] != Unknown {
				return fmt.Errorf("status at the limit = %+v, want unknown and no vote", st)
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no abstention after 5s at the limit: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Twenty more probes at the limit: still no verdict.
	faults := func() float64 { return testutil.ToFloat64(c.metrics.localFaults.WithLabelValues(LocalFileDescriptors)) }
	for seen := faults(); faults() < seen+20; {
		if time.Now().After(deadline) {
			restore()
			return fmt.Errorf("only %v local faults in 5s", faults())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, _ := c.Snapshot().Get("ep"); st.State != Unknown {
		restore()
		return fmt.Errorf("status after 300ms more at the limit = %+v, want unknown", st)
	}
	if err := restore(); err != nil {
		return err
	}
	if f := testutil.ToFloat64(c.metrics.probeFailures.WithLabelValues("http")); f != 0 {
		return fmt.Errorf("probe failures = %v, want 0", f)
	}

	deadline = time.Now().Add(5 * time.Second)
	for {
		st, _ := c.Snapshot().Get("ep")
		if st.State == Up && st.LocalFault == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not up 5s after the limit was restored: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
