package health

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/internal/testwait"
)

// These tests run HTTP probes through a Checker on Linux, where probes on
// kept connections run on its event loop, and check that the loop judges
// responses and treats connections as a probe on its own goroutine does
// (probe_reuse_test.go).

// ioModes are the two ways the loop reads and writes: on its io_uring,
// and with a system call each, as where the kernel refuses io_uring. A
// test run in both calls each mode's run from a subtest of that name;
// "ring" is skipped, saying why, on a machine that refuses io_uring.
func ioModes(t *testing.T, run func(t *testing.T, cc CheckerConfig)) {
	t.Run("ring", func(t *testing.T) {
		requireURing(t, 8)
		run(t, CheckerConfig{})
	})
	t.Run("plain", func(t *testing.T) { run(t, CheckerConfig{newRing: noRing}) })
}

func noRing(uint32) (*uring, error) { return nil, errors.New("no io_uring in this test") }

// loopChecker runs one target over NewHTTPProbe(cfg) against srv, probed
// every timeout, until the endpoint has seen want requests, and returns
// the Checker and its registry.
func loopChecker(t *testing.T, cc CheckerConfig, cfg HTTPCheck, srv *rawServer, want int64, timeout time.Duration) (*Checker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewChecker(cc, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(cfg),
		Interval: timeout, Timeout: timeout, Rise: 1, Fall: 1,
	}}, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	testwait.Until(t, 10*time.Second, fmt.Sprintf("%d requests", want), func() bool { return srv.requests.Load() >= want })
	stop()
	return c, reg
}

func loopHandled(c *Checker) int64 {
	if l := c.loop.Load(); l != nil {
		return l.handled.Load()
	}
	return 0
}

// loopWakes is how often the event loop woke up.
func loopWakes(c *Checker) int64 {
	if l := c.loop.Load(); l != nil {
		return l.wakes.Load()
	}
	return 0
}

// TestLoopKeepsConnection: the loop keeps a connection when the response
// allows it and lets it go when it does not (keepCases, as
// TestHTTPProbeKeepsConnection), and every probe succeeds either way.
func TestLoopKeepsConnection(t *testing.T) { ioModes(t, testLoopKeepsConnection) }

func testLoopKeepsConnection(t *testing.T, cc CheckerConfig) {
	for _, tc := range keepCases {
		for _, search := range []bool{false, true} {
			if search && !tc.hasOK {
				continue
			}
			name, cfg := tc.name, HTTPCheck{}
			if search {
				name += "/body searched"
				cfg.BodyContains = "ok"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := newRawServer(t, reply(tc.resp))
				c, reg := loopChecker(t, cc, cfg, srv, 8, 100*time.Millisecond)
				// A probe slowed past its timeout by a busy machine
				// fails; one the loop misjudges fails every time.
				if probes, failures := probeCounts(t, reg); failures*4 > probes {
					st, _ := c.Snapshot().Get("ep")
					t.Errorf("%d of %d probes failed (%s), want none", failures, probes, st.LastError)
				}
				accepts, requests, handled := srv.accepts.Load(), srv.requests.Load(), loopHandled(c)
				if tc.wantKept {
					if accepts > requests/4 || handled < requests/2 {
						t.Errorf("%d requests on %d connections, %d of them on the loop; want one connection and the loop", requests, accepts, handled)
					}
				} else if accepts != requests || handled != 0 {
					t.Errorf("%d requests on %d connections, %d of them on the loop; want a connection each and none on the loop", requests, accepts, handled)
				}
			})
		}
	}
}

// TestLoopResponses: the loop judges responses as a probe does on its own
// goroutine (a few cases of TestHTTPProbeResponses, and a response that
// arrives in parts).
func TestLoopResponses(t *testing.T) { ioModes(t, testLoopResponses) }

func testLoopResponses(t *testing.T, cc CheckerConfig) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nok ready"
	tests := []struct {
		name string
		cfg  HTTPCheck
		bad  []string // the responses after the first, in parts
		want string
	}{
		{"status", HTTPCheck{}, []string{"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"}, "status 503, want 200-399"},
		{"body", HTTPCheck{BodyContains: "ok"}, []string{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope"}, `body does not contain "ok"`},
		{"body in parts", HTTPCheck{BodyContains: "ready"}, []string{"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 9\r\n\r\nall ", "ready"}, ""},
		{"head cut short", HTTPCheck{}, []string{"HTTP/1.1 200 OK\r\nContent-Le", ""}, "unexpected EOF"},
		{"not HTTP", HTTPCheck{}, []string{"SSH-2.0-OpenSSH_9.6\r\n"}, `malformed HTTP response "SSH-2.0-OpenSSH_9.6"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
				if n.Add(1) <= 3 {
					conn.Write([]byte(ok))
					return true
				}
				for _, part := range tc.bad {
					if part == "" {
						conn.Close()
						return false
					}
					conn.Write([]byte(part))
					time.Sleep(5 * time.Millisecond)
				}
				return true
			})
			c, reg := loopChecker(t, cc, tc.cfg, srv, 8, 100*time.Millisecond)
			probes, failures := probeCounts(t, reg)
			st, _ := c.Snapshot().Get("ep")
			if tc.want == "" {
				if failures*4 > probes {
					t.Errorf("%d of %d probes failed, target %s (%q); want none failed", failures, probes, st.State, st.LastError)
				}
			} else if st.State != Down || st.LastError != tc.want {
				t.Errorf("target %s (%q), want down (%q)", st.State, st.LastError, tc.want)
			}
			if loopHandled(c) == 0 {
				t.Error("no probe on the loop")
			}
		})
	}
}

// TestLoopIdleClose: an endpoint that closes each connection while it is
// idle (or resets it) makes no probe fail on the loop either: the next
// probe makes a new connection.
func TestLoopIdleClose(t *testing.T) { ioModes(t, testLoopIdleClose) }

func testLoopIdleClose(t *testing.T, cc CheckerConfig) {
	for _, reset := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "reset"}[reset], func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
				conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				if n.Add(1)%2 == 0 {
					// The keep-alive timeout: after a second request,
					// between two probes.
					time.AfterFunc(5*time.Millisecond, func() {
						if reset {
							conn.(*net.TCPConn).SetLinger(0)
						}
						conn.Close()
					})
				}
				return true
			})
			c, reg := loopChecker(t, cc, HTTPCheck{}, srv, 12, 100*time.Millisecond)
			if probes, failures := probeCounts(t, reg); failures*4 > probes {
				st, _ := c.Snapshot().Get("ep")
				t.Errorf("%d of %d probes failed (%s), want none", failures, probes, st.LastError)
			}
			if loopHandled(c) == 0 {
				t.Error("no probe on the loop")
			}
		})
	}
}

// TestLoopHangingEndpoint: an endpoint that stops answering on a kept
// connection times the loop's probe out.
func TestLoopHangingEndpoint(t *testing.T) { ioModes(t, testLoopHangingEndpoint) }

func testLoopHangingEndpoint(t *testing.T, cc CheckerConfig) {
	release := make(chan struct{})
	defer close(release)
	var n atomic.Int64
	srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
		if n.Add(1) > 3 {
			<-release
			return false
		}
		conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		return true
	})
	reg := prometheus.NewRegistry()
	c, err := NewChecker(cc, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1,
	}}, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	runChecker(t, c)
	waitState(t, c, "ep", Down)
	if st, _ := c.Snapshot().Get("ep"); st.LastError != "timeout after 50ms" {
		t.Errorf("last error %q, want %q", st.LastError, "timeout after 50ms")
	}
	if loopHandled(c) == 0 {
		t.Error("no probe on the loop")
	}
}

// TestLoopLeavesNothing: the loop's connections are closed with their
// targets and when the Checker stops, and the loop's goroutine, its epoll
// instance and its eventfd go with it.
func TestLoopLeavesNothing(t *testing.T) {
	srv, open := newOpenCountServer(t)
	fds, goroutines := openFiles(t), runtime.NumGoroutine()
	targets := make([]Target, 6)
	for i := range targets {
		targets[i] = Target{
			ID: fmt.Sprintf("ep%d", i), Addr: addrPort(t, srv.Listener.Addr()), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
			Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 3,
		}
	}
	c, err := NewChecker(CheckerConfig{}, targets, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	testwait.Until(t, 10*time.Second, "probes on the loop", func() bool { return loopHandled(c) >= 30 && open.Load() == 6 })
	waitConnsClosed(t, c, targets, stop, open, fds, goroutines)
}

// TestLoopHedgesHungEndpoint: a probe on the loop (a kept connection) of
// an Up endpoint that stops answering gets its confirmation at half its
// timeout, on a new connection, so the endpoint (Fall 2) is Down about
// one Timeout after that probe started, when both time out. Without the
// hedge the confirmation waited for Interval/5 and was Down no sooner
// than Interval/5 + Timeout.
func TestLoopHedgesHungEndpoint(t *testing.T) {
	const timeout, interval = 100 * time.Millisecond, 2 * time.Second
	release := make(chan struct{})
	defer close(release)
	var (
		n      atomic.Int64
		hungAt atomic.Pointer[time.Time]
	)
	srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
		if n.Add(1) > 1 {
			now := time.Now()
			hungAt.CompareAndSwap(nil, &now)
			<-release
			return false
		}
		conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		return true
	})
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: interval, Timeout: timeout, Rise: 1, Fall: 2,
	}}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runChecker(t, c)
	waitState(t, c, "ep", Down)
	st, _ := c.Snapshot().Get("ep")
	if loopHandled(c) == 0 {
		t.Fatal("the hung probe did not run on the loop")
	}
	if got := srv.accepts.Load(); got < 2 {
		t.Errorf("%d connections: want the hedge on a new one", got)
	}
	if st.LastError != "timeout after 100ms" {
		t.Errorf("last error %q, want %q", st.LastError, "timeout after 100ms")
	}
	// About 100ms with the hedge; 500ms or more without it.
	if d := st.Since.Sub(*hungAt.Load()); d < timeout || d >= interval/5 {
		t.Errorf("down %v after the loop's probe hung: want about one Timeout (100ms), under Interval/5 (%v)", d, interval/5)
	}
}

// TestLoopNoHedgeWhileDown: a probe on the loop that hangs while no
// member of its group is Up (here a target still rising after being
// down) gets no hedge: it could not take anything Down, and its hedge
// would be a new connection for nothing.
func TestLoopNoHedgeWhileDown(t *testing.T) {
	const timeout, interval = 100 * time.Millisecond, time.Second
	release := make(chan struct{})
	defer close(release)
	var n atomic.Int64
	srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
		switch n.Add(1) {
		case 1:
			conn.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
		case 2, 3:
			conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		default:
			<-release
			return false
		}
		return true
	})
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: interval, Timeout: timeout, Rise: 3, Fall: 1,
	}}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	// The second 200 and the hung probe, on the loop's connection. The
	// next probe, with a connection of its own, comes an interval after
	// the hung one started, 0.9s after it timed out at the earliest.
	testwait.Until(t, 10*time.Second, "the hung probe timed out on the loop", func() bool { return loopHandled(c) >= 2 })
	accepts := srv.accepts.Load()
	stop()
	if st, _ := c.Snapshot().Get("ep"); st.State != Down {
		t.Fatalf("target %s, want down (the test's premise)", st.State)
	}
	if accepts != 2 {
		t.Errorf("%d connections when the hung probe timed out, want 2: a hedge made one more", accepts)
	}
}

// TestLoopPathFromKeptConnection: the loop's probes of a remote endpoint
// feed its path estimate with the kernel's round trip of the connection
// the loop holds, as a probe on its own goroutine does: after every
// exchange while the estimate is young, and then after every rttEvery-th
// (a system call per probe costs more than the estimate gains from it),
// so the estimate follows the path while the loop keeps the connection.
func TestLoopPathFromKeptConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: addrPort(t, srv.Listener.Addr()), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}), Remote: true,
		Interval: 30 * time.Millisecond, Timeout: 30 * time.Millisecond, Rise: 1, Fall: 3,
	}}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	testwait.Until(t, 10*time.Second, "probes on the loop", func() bool { return loopHandled(c) >= 40 })
	stop()
	var g *group
	for _, gr := range c.groups {
		g = gr // the only one
	}
	handled, n := loopHandled(c), int64(g.path.n)
	// Each connection's connect and first exchange were measured on a
	// goroutine (two measurements); the loop adds one per exchange until
	// there are youngPath, then one per rttEvery exchanges on each
	// connection.
	lo := youngPath + (handled-youngPath)/rttEvery - conns.Load()
	hi := 2*conns.Load() + youngPath + handled/rttEvery + conns.Load()
	if n < lo || n > hi {
		t.Errorf("%d measurements of the path after %d connections and %d probes on the loop: want %d to %d", n, conns.Load(), handled, lo, hi)
	}
	if rto, ok := g.path.rto(); !ok || rto > 20*time.Millisecond {
		t.Errorf("path RTO %v (measured: %v) on loopback, want a few milliseconds at most", rto, ok)
	}
}

// TestLoopRing: where the kernel offers io_uring, the loop's reads and
// writes go through its ring; when the ring fails, the loop says so and
// goes on with a system call each, and no probe fails for it.
func TestLoopRing(t *testing.T) {
	requireURing(t, 8)
	var ringFD atomic.Int64
	var logs bytes.Buffer // written under the handler's lock, read once the Checker stopped
	srv := newRawServer(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	reg := prometheus.NewRegistry()
	c, err := NewChecker(CheckerConfig{newRing: func(n uint32) (*uring, error) {
		r, err := newURing(n)
		if err == nil {
			ringFD.Store(int64(r.fd))
		}
		return r, err
	}}, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 1, Fall: 3,
	}}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runChecker(t, c)
	testwait.Until(t, 10*time.Second, "probes on the loop", func() bool { return loopHandled(c) >= 5 })
	l := c.loop.Load()
	// Each probe on the loop sent its request on the ring, and read its
	// answer there unless it timed out.
	if ops, handled := l.ringOps.Load(), loopHandled(c); ops < handled+1 {
		t.Fatalf("%d operations on the ring after %d probes on the loop, want a send and a read each", ops, handled)
	}
	// Break the ring under the loop: its descriptor now names /dev/null.
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(null)
	if err := syscall.Dup3(null, int(ringFD.Load()), 0); err != nil {
		t.Fatal(err)
	}
	// A batch the ring had already taken may still finish on it; after
	// that, the loop is on plain calls.
	before := loopHandled(c)
	testwait.Until(t, 10*time.Second, "probes on the loop without its ring", func() bool { return loopHandled(c) >= before+3 })
	before, ops := loopHandled(c), l.ringOps.Load()
	testwait.Until(t, 10*time.Second, "more probes on the loop without its ring", func() bool { return loopHandled(c) >= before+3 })
	stop()
	if probes, failures := probeCounts(t, reg); failures > 0 {
		t.Errorf("%d of %d probes failed, want none", failures, probes)
	}
	if l.ring != nil || l.ringOps.Load() != ops {
		t.Errorf("the loop kept its broken ring (%d operations on it since)", l.ringOps.Load()-ops)
	}
	if !strings.Contains(logs.String(), "io_uring failed") {
		t.Errorf("nothing logged of the ring failing:\n%s", logs.String())
	}
	if st, _ := c.Snapshot().Get("ep"); st.State != Up {
		t.Errorf("target %s (%q), want up", st.State, st.LastError)
	}
}

// TestLoopBellRingsOnceWhileBusy checks what the loop's bell (see loop)
// is for: an event wakes the runtime's poller while the loop waits, but
// once the loop is awake, further events make no sound until it waits
// again.
func TestLoopBellRingsOnceWhileBusy(t *testing.T) {
	l := newTestLoop(t)
	// An epoll instance of its own asks whether bell is readable,
	// without taking its event as the loop's wait does.
	ear, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ear)
	if err := syscall.EpollCtl(ear, syscall.EPOLL_CTL_ADD, l.bell, &syscall.EpollEvent{Events: syscall.EPOLLIN}); err != nil {
		t.Fatal(err)
	}
	rings := func() bool {
		t.Helper()
		var ev [1]syscall.EpollEvent
		n, err := syscall.EpollWait(ear, ev[:], 0)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	drain := func() {
		var b [8]byte
		rawRead(l.evfd, b[:])
	}
	if k, err := l.wait(); k != 0 || err != nil {
		t.Fatalf("an idle loop harvested %d events (%v)", k, err)
	}
	if rings() {
		t.Fatal("the bell rings with nothing to hear")
	}
	l.wake()
	if !rings() {
		t.Fatal("an event while the loop waits does not ring the bell")
	}
	if k, _ := l.wait(); k != 1 {
		t.Fatalf("the woken loop harvested %d events, want 1", k)
	}
	drain()
	l.wake() // while the loop is busy
	if rings() {
		t.Fatal("an event while the loop is busy rings the bell")
	}
	// The loop's next wait finds that event, and does not arm the bell.
	if k, _ := l.wait(); k != 1 {
		t.Fatalf("the loop harvested %d events, want 1", k)
	}
	if rings() {
		t.Fatal("the bell rings after a harvest")
	}
	// Once the loop waits again, the bell is armed again.
	drain()
	if k, err := l.wait(); k != 0 || err != nil {
		t.Fatalf("an idle loop harvested %d events (%v)", k, err)
	}
	l.wake()
	if !rings() {
		t.Fatal("an event after the loop waits again does not ring the bell")
	}
	drain()
}

// newTestLoop returns a loop of a Checker with no targets, closed when
// the test ends; the test drives it by hand.
func newTestLoop(t *testing.T) *loop {
	t.Helper()
	c, err := NewChecker(CheckerConfig{}, nil, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLoop(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.closeAll)
	return l
}

// TestLoopSortsDue: the probes that fell due in one batch start in the
// order of their sockets' descriptors, tcp connects after them in the
// order of their connections' tokens, groups the loop does not hold last;
// what was due before the batch stays where it was.
func TestLoopSortsDue(t *testing.T) {
	l := &loop{}
	mk := func(lc *loopConn) *group { return &group{lc: lc} }
	earlier := []*group{mk(&loopConn{fd: 90}), mk(&loopConn{fd: 3})}
	sends := []*group{mk(&loopConn{fd: 5}), mk(&loopConn{fd: 7}), mk(&loopConn{fd: 11}), mk(&loopConn{fd: 40})}
	connects := []*group{mk(&loopConn{fd: -1, connect: true, token: 2}), mk(&loopConn{fd: -1, connect: true, token: 9})}
	unheld := mk(nil)
	want := slices.Concat(earlier, sends, connects, []*group{unheld})
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		batch := slices.Concat(sends, connects, []*group{unheld})
		r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		l.due = slices.Concat(earlier, batch)
		l.sortDue(len(earlier))
		if !slices.Equal(l.due, want) {
			t.Fatalf("due in the order %v, want %v", describeDue(l.due), describeDue(want))
		}
	}
}

func describeDue(gs []*group) []string {
	var out []string
	for _, g := range gs {
		switch {
		case g.lc == nil:
			out = append(out, "unheld")
		case g.lc.connect:
			out = append(out, fmt.Sprintf("connect#%d", g.lc.token))
		default:
			out = append(out, fmt.Sprintf("fd%d", g.lc.fd))
		}
	}
	return out
}

// TestLoopExpedite: Expedite brings forward the next probe of an endpoint
// whose connection the loop keeps, as any other: at once, once per
// interval.
func TestLoopExpedite(t *testing.T) { ioModes(t, testLoopExpedite) }

func testLoopExpedite(t *testing.T, cc CheckerConfig) {
	srv := newRawServer(t, reply(okResponse))
	const interval = time.Second
	c, err := NewChecker(cc, []Target{{
		ID: "ep", Addr: srv.addr(t), Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: interval, Timeout: interval / 2, Rise: 1, Fall: 1,
	}}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer runChecker(t, c)()
	// The second probe runs on the loop; the third is due an interval
	// (less 10%) after it started.
	testwait.Until(t, 10*time.Second, "a probe on the loop", func() bool { return loopHandled(c) >= 1 })
	last, requests := time.Now(), srv.requests.Load()
	// Its result puts the group back in the scheduler just after the
	// loop counts the probe: Expedite moves only a waiting probe.
	var g *group
	c.mu.Lock()
	for _, gr := range c.groups {
		g = gr // the only one
	}
	c.mu.Unlock()
	testwait.Until(t, interval/4, "the next probe scheduled", func() bool {
		c.sched.mu.Lock()
		defer c.sched.mu.Unlock()
		return g.queued
	})
	c.Expedite([]string{"ep"})
	testwait.Until(t, interval, "the expedited probe", func() bool { return srv.requests.Load() > requests })
	if took := time.Since(last); took > interval/2 {
		t.Errorf("the expedited probe came %v after the last one, want well within the interval (%v)", took, interval)
	}
	if got := testutil.ToFloat64(c.metrics.expedited); got != 1 {
		t.Errorf("expedited probes counted: %v, want 1", got)
	}
	// Once per interval: a second Expedite at once brings nothing.
	requests = srv.requests.Load()
	c.Expedite([]string{"ep"})
	time.Sleep(300 * time.Millisecond)
	if got := srv.requests.Load(); got != requests {
		t.Errorf("%d probes after a second Expedite within the interval, want none", got-requests)
	}
	if got := testutil.ToFloat64(c.metrics.expedited); got != 1 {
		t.Errorf("expedited probes counted after a second Expedite: %v, want 1", got)
	}
}
