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

// fdChildEnv makes the test binary run exhaustedChild instead of the test.
const fdChildEnv = "GSLBD_HEALTH_FD_CHILD"

// TestLocalFaultRealExhaustion runs a real Checker with a real HTTP probe
// in a child process whose file-descriptor limit is then lowered below the
// descriptors it has open: every probe fails with "too many open files".
// The endpoint, a real server in the same child, stays healthy throughout
// and must never be judged down; once the limit is restored it comes up.
func TestLocalFaultRealExhaustion(t *testing.T) {
	if os.Getenv(fdChildEnv) != "" {
		if err := exhaustedChild(); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("PASS")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLocalFaultRealExhaustion$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
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

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return err
	}
	// Every descriptor in use stays usable; not one more can be opened
	// (the kernel refuses a new one numbered at or above the limit).
	lowered := syscall.Rlimit{Cur: 0, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		return err
	}
	err = runProbe(context.Background(), probe, addr, time.Second)
	if reason, ok := localFault(err); !ok || reason != LocalFileDescriptors || !errors.Is(err, syscall.EMFILE) {
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
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
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
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
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
			return fmt.Errorf("only %v local faults in 5s", faults())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, _ := c.Snapshot().Get("ep"); st.State != Unknown {
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		return fmt.Errorf("status after 300ms more at the limit = %+v, want unknown", st)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
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
