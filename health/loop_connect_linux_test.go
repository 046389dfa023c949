package health

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/internal/testwait"
)

// These tests run tcp checks through a Checker on Linux, where the event
// loop makes their connects after the first probe, and check that it
// judges them as NewTCPProbe does on a goroutine (TestTCPProbe).

// requireLoopConnects skips a test of the loop's connects where the loop
// makes none (linux/386, see loopConnects).
func requireLoopConnects(t *testing.T) {
	t.Helper()
	if !loopConnects {
		t.Skip("the event loop makes no connects on this platform: tcp checks run on goroutines")
	}
}

// tcpChecker runs one tcp check of addr, "ep", probed every interval
// within timeout, down after fall failures (up after one success), and
// returns the Checker and its registry.
func tcpChecker(t *testing.T, addr netip.AddrPort, interval, timeout time.Duration, fall int) (*Checker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewChecker(CheckerConfig{}, []Target{{
		ID: "ep", Addr: addr, Kind: "tcp", Probe: NewTCPProbe(),
		Interval: interval, Timeout: timeout, Rise: 1, Fall: fall,
	}}, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	runChecker(t, c)
	return c, reg
}

// TestLoopConnect: after its first probe a tcp check's connects run on
// the loop, over IPv4 and IPv6, which closes each with a reset (no
// TIME_WAIT here), keeps the endpoint Up while it accepts, and takes it
// Down with the goroutine probe's error once it refuses.
func TestLoopConnect(t *testing.T) {
	requireLoopConnects(t)
	t.Run("IPv4", func(t *testing.T) { testLoopConnect(t, newResetServer(t, "127.0.0.1:0")) })
	t.Run("IPv6", func(t *testing.T) {
		if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		} else {
			ln.Close()
		}
		testLoopConnect(t, newResetServer(t, "[::1]:0"))
	})
}

func testLoopConnect(t *testing.T, srv *resetServer) {
	c, reg := tcpChecker(t, srv.addr, 100*time.Millisecond, 100*time.Millisecond, 1)
	testwait.Until(t, 10*time.Second, "10 connects on the loop", func() bool { return loopHandled(c) >= 10 })
	probes, failures := probeCounts(t, reg)
	if st, _ := c.Snapshot().Get("ep"); st.State != Up || failures*4 > probes {
		t.Errorf("endpoint %s after %d of %d probes failed (%s), want up", st.State, failures, probes, st.LastError)
	}
	if handled := loopHandled(c); handled < probes-2 {
		t.Errorf("%d of %d probes on the loop, want all but the first", handled, probes)
	}
	srv.checkReset(t, 10)

	srv.ln.Close()
	before := loopHandled(c)
	st := waitState(t, c, "ep", Down)
	if want := "connect: connection refused"; st.LastError != want {
		t.Errorf("last error %q, want %q (as TestTCPProbe)", st.LastError, want)
	}
	if loopHandled(c) == before {
		t.Error("the refused connects did not run on the loop")
	}
}

// TestLoopConnectTimeout: a connect that gets no answer (the listener's
// queue is full, so the kernel drops the SYN) fails at its timeout, on
// the loop, with the goroutine probe's error.
func TestLoopConnectTimeout(t *testing.T) {
	requireLoopConnects(t)
	addr := fullListener(t)
	c, _ := tcpChecker(t, addr, 100*time.Millisecond, 100*time.Millisecond, 1)
	testwait.Until(t, 10*time.Second, "3 timed-out connects on the loop", func() bool { return loopHandled(c) >= 3 })
	st, _ := c.Snapshot().Get("ep")
	if want := "timeout after 100ms"; st.State != Down || st.LastError != want {
		t.Errorf("endpoint %s (%q), want down (%q)", st.State, st.LastError, want)
	}
}

// fullListener returns the address of a listener on 127.0.0.1 whose
// queue of connections to accept is full: the kernel drops further SYNs,
// so a connect to it gets no answer.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	addr := silentListener(t)
	// A backlog of 0 holds one connection, which fills the queue. The
	// connects do not wait for their answer: a second one would get none.
	sa, _ := connectAddr(addr)
	for range 2 {
		cfd, err := rawConnect(sa)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(cfd) })
	}
	if err := connectWaits(addr, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return addr
}

// connectWaits checks that a connect to addr gets no answer within d.
func connectWaits(addr netip.AddrPort, d time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr.String(), d)
	if err == nil {
		conn.Close()
		return fmt.Errorf("a connect to the full listener %s was answered", addr)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		return fmt.Errorf("a connect to the full listener %s: %w", addr, err)
	}
	return nil
}

// TestLoopConnectsInRounds: the loop starts at most roundConnects
// connects between two harvests, in the order they fell due, and the
// rest in the next rounds, so that answers to the first wait for no more
// than a round.
func TestLoopConnectsInRounds(t *testing.T) {
	requireLoopConnects(t)
	srv := newResetServer(t, "127.0.0.1:0")
	l := newTestLoop(t)
	const n = 2*roundConnects + 5
	sa, _ := connectAddr(srv.addr)
	for range n {
		g := &group{key: groupKey{addr: srv.addr, kind: "tcp", timeout: time.Second, interval: time.Second}, ctx: context.Background(), run: context.Background()}
		gc := &groupConfig{probe: NewTCPProbe()}
		g.cfg.Store(gc)
		l.hold(g, &loopConn{fd: -1, gc: gc, connect: true, req: sa, retire: 1 << 62, hidx: -1})
		l.due = append(l.due, g)
	}
	for round, want := range []int{roundConnects, 2 * roundConnects, n} {
		l.startDue(time.Now())
		if len(l.heap) != want {
			t.Fatalf("round %d: %d connects in flight, want %d", round, len(l.heap), want)
		}
		for i, g := range l.due[:want] {
			if g != nil {
				t.Fatalf("round %d: due group %d not started", round, i)
			}
		}
	}
	if len(l.due) != 0 || l.next != 0 {
		t.Errorf("%d groups still due (next %d), want none", len(l.due)-l.next, l.next)
	}
}

// TestLoopConnectHedged: a connect on the loop that an Up endpoint has
// not answered at half its timeout gets its hedge at once, as an HTTP
// probe on the loop does (TestLoopHedgesHungEndpoint), so the endpoint
// goes Down about one timeout after it went silent, not an interval
// later. The endpoint is a listener that accepts nothing: the first
// probe's connection fills its queue, and later SYNs get no answer.
func TestLoopConnectHedged(t *testing.T) {
	requireLoopConnects(t)
	const timeout, interval = 100 * time.Millisecond, 2 * time.Second
	addr := silentListener(t)
	c, _ := tcpChecker(t, addr, interval, timeout, 2)
	waitState(t, c, "ep", Up)
	// The next probe's connect, on the loop, waits for an answer.
	testwait.Until(t, 10*time.Second, "a connect waiting", func() bool { return len(connsTo(t, addr.Port(), "02")) > 0 })
	silent := time.Now()
	st := waitState(t, c, "ep", Down)
	if loopHandled(c) == 0 {
		t.Error("the silent connect did not run on the loop")
	}
	if want := "timeout after 100ms"; st.LastError != want {
		t.Errorf("last error %q, want %q", st.LastError, want)
	}
	// The probe and its hedge (from half the timeout on) fail about
	// 150ms after the connect started; without the hedge the second
	// failure would come Interval/5 (400ms) and a timeout later.
	if d := st.Since.Sub(silent); d >= timeout+interval/10 {
		t.Errorf("down %v after the connect started: want about 1.5 timeouts (150ms), under %v", d, timeout+interval/10)
	}
}

// silentListener returns the address of a listener on 127.0.0.1 that
// never accepts, with a queue of one connection: the first connect to it
// completes, and later ones get no answer.
func silentListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(bound.(*syscall.SockaddrInet4).Port))
}
