package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/internal/testwait"
)

// These tests run a real Checker with real HTTP probes against real
// servers on 127.0.0.1:0, in real time: what a user would see of the
// connections a Checker keeps.

// runChecker starts c and returns a function that stops it and waits for
// Run to return.
func runChecker(t *testing.T, c *Checker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitState waits up to 10s until target id of c is in state want, and
// returns its status then.
func waitState(t *testing.T, c *Checker, id string, want State) Status {
	t.Helper()
	var st Status
	testwait.Until(t, 10*time.Second, fmt.Sprintf("%s %s", id, want), func() bool {
		st, _ = c.Snapshot().Get(id)
		return st.State == want
	})
	return st
}

// TestCheckerKeepsConnections: a Checker probes an HTTP endpoint over one
// kept connection, not a new one per probe.
func TestCheckerKeepsConnections(t *testing.T) {
	var conns, requests atomic.Int64
	enough := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if requests.Add(1) == 20 {
			close(enough)
		}
	}))
	countConns(srv, &conns)
	srv.Start()
	defer srv.Close()
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: addrPort(t, srv.Listener.Addr()), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 3,
	}}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d probes in 10s at a 50ms interval", requests.Load())
	}
	stop()
	// A probe slowed past its timeout by a busy machine costs a new
	// connection; one per probe is what reuse avoids.
	if n, r := conns.Load(), requests.Load(); n > r/4 {
		t.Errorf("%d probes opened %d connections, want one (a few at most)", r, n)
	}
}

// TestCheckerClosesConnections: the connections a Checker keeps are
// closed when their targets are removed and when it stops, and nothing of
// them is left: no connection at the endpoint, no file descriptor, no
// goroutine.
func TestCheckerClosesConnections(t *testing.T) {
	srv, open := newOpenCountServer(t)
	addr := addrPort(t, srv.Listener.Addr())
	fds, goroutines := openFiles(t), runtime.NumGoroutine()

	// Six targets of their own (no Key): six probes, six connections.
	targets := make([]Target, 6)
	for i := range targets {
		targets[i] = Target{
			ID: fmt.Sprintf("ep%d", i), Addr: addr, Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
			Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 3,
		}
	}
	c, err := NewChecker(CheckerConfig{}, targets, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	allUp := func() bool {
		for _, st := range c.Snapshot().States() {
			if st != Up {
				return false
			}
		}
		return true
	}
	testwait.Until(t, 10*time.Second, "six targets up over six kept connections", func() bool { return allUp() && open.Load() == 6 })
	waitConnsClosed(t, c, targets, stop, open, fds, goroutines)
}

// newOpenCountServer starts an HTTP server that answers every request
// with an empty 200 and counts the connections open to it; it is closed
// when the test ends.
func newOpenCountServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	open := new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, open
}

// waitConnsClosed takes four of c's six targets away, then stops c with
// stop, and waits for their connections to the server that counts them
// in open to close with them, then every other connection, and for the
// file descriptors and goroutines to be back to fds and goroutines.
func waitConnsClosed(t *testing.T, c *Checker, targets []Target, stop func(), open *atomic.Int64, fds, goroutines int) {
	t.Helper()
	c.Update(targets[:2])
	testwait.Until(t, 10*time.Second, "four connections closed with their targets", func() bool { return open.Load() == 2 })
	stop()
	testwait.Until(t, 10*time.Second, "every connection closed when the checker stopped", func() bool { return open.Load() == 0 })
	testwait.Until(t, 10*time.Second, "file descriptors back to before", func() bool { return openFiles(t) <= fds })
	testwait.Until(t, 10*time.Second, "goroutines back to before", func() bool { return runtime.NumGoroutine() <= goroutines })
}

// openFiles counts this process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(fds)
}

// TestCheckerDetectsKilledServer: with the services file's default check
// (interval 500ms, timeout 300ms, fall 2), an endpoint whose process dies
// is judged down as fast over a kept connection as over new ones: the
// package documents at most about 0.66s; a busy test machine is given 2s.
func TestCheckerDetectsKilledServer(t *testing.T) {
	srv := newRawServer(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2,
	}}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runChecker(t, c)
	state := func() State { st, _ := c.Snapshot().Get("ep"); return st.State }
	testwait.Until(t, 10*time.Second, "endpoint up", func() bool { return state() == Up })
	srv.kill(false)
	killed := time.Now()
	testwait.Until(t, 10*time.Second, "killed endpoint down", func() bool { return state() == Down })
	d := time.Since(killed)
	st, _ := c.Snapshot().Get("ep")
	t.Logf("killed endpoint down after %v (%s)", d.Round(time.Millisecond), st.LastError)
	if d > 2*time.Second {
		t.Errorf("killed endpoint down after %v, want within 2s (0.66s documented)", d)
	}
	if want := "connect: connection refused"; st.LastError != want {
		t.Errorf("last error = %q, want %q", st.LastError, want)
	}
}

// TestCheckerProbesWhileSnapshotBuilt: probes whose results change their
// targets go on while the Checker builds a snapshot (it holds its lock
// while it copies the whole status map, which at 10,000 targets takes
// milliseconds): queueing a change does not wait for it. When it did,
// the event loop, which finishes thousands of probes, stalled behind
// every snapshot of a burst of changes, its probes timed out, and each
// timeout was one more change.
func TestCheckerProbesWhileSnapshotBuilt(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: addrPort(t, srv.Listener.Addr()), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Rise: 1, Fall: 1,
	}}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runChecker(t, c)
	testwait.Until(t, 10*time.Second, "a few probes", func() bool { return requests.Load() >= 4 })
	// Every probe now changes the target's state. Hold the lock a
	// snapshot is built under.
	c.mu.Lock()
	defer c.mu.Unlock()
	n := requests.Load()
	testwait.Until(t, 10*time.Second, "probes while a snapshot is built", func() bool { return requests.Load() >= n+6 })
}
