package health

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// shared returns a target that shares its probe with every other target
// of the same address built by shared.
func shared(id string, p Probe) Target {
	t := target(id, p)
	t.Key = "GET /"
	return t
}

func TestCheckerSharedProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p flip
		a, b, c := shared("svc1/dc1/a", p.probe), shared("svc2/dc1/a", p.probe), shared("svc3/dc1/a", p.probe)
		b.Fall = 3 // thresholds stay per target
		r := start(t, CheckerConfig{}, a, b, c)
		defer r.stop(t)

		advance(10 * time.Second)
		// One probe stream: 10s at 500ms ±10% is 19 to 23 probes, not 3×.
		if got := p.calls.Load(); got < 18 || got > 23 {
			t.Errorf("%d probes in 10s for three targets sharing one endpoint, want one stream of about 20", got)
		}
		for _, id := range []string{a.ID, b.ID, c.ID} {
			if got := r.state(id); got != Up {
				t.Errorf("state(%s) = %v, want up", id, got)
			}
		}

		// A failure reaches every target, each with its own threshold.
		p.set(errRefused)
		calls := p.calls.Load()
		for p.calls.Load() < calls+2 {
			advance(50 * time.Millisecond)
		}
		if r.state(a.ID) != Down || r.state(c.ID) != Down || r.state(b.ID) != Up {
			t.Fatalf("after two failures: %v, want a and c down, b (fall 3) up", r.Snapshot().States())
		}
		for p.calls.Load() < calls+3 {
			advance(50 * time.Millisecond)
		}
		st, _ := r.Snapshot().Get(b.ID)
		if st.State != Down || st.LastError != errRefused.Error() {
			t.Errorf("b after three failures = %+v, want down with the probe error", st)
		}
	})
}

func TestCheckerSharingNeedsTheSameProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p flip
		a := shared("a", p.probe)
		other := shared("other-port", p.probe)
		other.Addr = netip.MustParseAddrPort("192.0.2.1:8080")
		slow := shared("slow", p.probe)
		slow.Interval = time.Second
		remote := shared("remote", p.probe)
		remote.Remote = true
		unkeyed := target("unkeyed", p.probe)
		r := start(t, CheckerConfig{}, a, other, slow, remote, unkeyed)
		defer r.stop(t)
		advance(10 * time.Second)
		// a, other and unkeyed: ~20 each; slow: ~10; remote: its timeout
		// grows by 2 × MaxPathAllowance (no connect measured), and so does
		// its interval: ~14.
		// One pair shared by mistake would make about 64.
		if got := p.calls.Load(); got < 75 || got > 100 {
			t.Errorf("%d probes in 10s, want about 84 (five separate probes)", got)
		}
	})
}

func TestCheckerUpdateRegroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p, q flip
		r := start(t, CheckerConfig{}, shared("a", p.probe), shared("b", p.probe))
		defer r.stop(t)
		advance(time.Second)
		r.signalled()
		bBefore, _ := r.Snapshot().Get("b")

		// b gets its own check (another key): it keeps its state and is
		// probed by its own probe from now on; a keeps the shared one.
		bt := shared("b", q.probe)
		bt.Key = "GET /other"
		q.set(errRefused)
		r.Update([]Target{shared("a", p.probe), bt})
		if got, _ := r.Snapshot().Get("b"); got != bBefore {
			t.Errorf("b after Update = %+v, want unchanged %+v", got, bBefore)
		}
		pCalls := p.calls.Load()
		advance(2 * time.Second)
		if r.state("b") != Down || r.state("a") != Up {
			t.Errorf("states %v, want a up, b down by its new probe", r.Snapshot().States())
		}
		if got := p.calls.Load() - pCalls; got < 3 || got > 5 {
			t.Errorf("shared probe ran %d times in 2s after b left, want about 4", got)
		}
	})
}

// TestPathTiming: a remote target's timeout is its configured timeout
// plus the round trips its probe needs at the measured RTO, bounded by
// MaxPathAllowance per round trip, and the interval never falls below the
// timeout.
func TestPathTiming(t *testing.T) {
	const ms = time.Millisecond
	steady := func(d time.Duration, n int) rtt {
		var r rtt
		for range n {
			r.observe(d)
		}
		return r
	}
	tests := []struct {
		name                  string
		kind                  string
		dials                 bool
		r                     rtt
		wantTimeout, wantIntv time.Duration
	}{
		{"nothing measured yet", "http", true, rtt{}, 300*ms + 2*MaxPathAllowance, 300*ms + 2*MaxPathAllowance},
		{"LAN", "http", true, steady(ms/2, 20), 301 * ms, 500 * ms},
		{"200ms http", "http", true, steady(200*ms, 40), 700 * ms, 700 * ms},
		{"200ms tcp", "tcp", true, steady(200*ms, 40), 500 * ms, 500 * ms},
		{"200ms https", "https", true, steady(200*ms, 40), 1100 * ms, 1100 * ms},
		{"300ms https capped", "https", true, steady(300*ms, 40), 300*ms + 4*MaxPathAllowance, 300*ms + 4*MaxPathAllowance},
		{"first sample is cautious", "http", true, steady(100*ms, 1), 700 * ms, 700 * ms},
		// On a kept connection the request is the only round trip.
		{"200ms http, kept connection", "http", false, steady(200*ms, 40), 500 * ms, 500 * ms},
		{"200ms https, kept connection", "https", false, steady(200*ms, 40), 500 * ms, 500 * ms},
		{"nothing measured yet, kept connection", "http", false, rtt{}, 300*ms + MaxPathAllowance, 500 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			to, iv := pathTiming(tc.kind, tc.dials, 300*ms, 500*ms, tc.r)
			// The variation term decays geometrically: allow a little.
			if to < tc.wantTimeout || to > tc.wantTimeout+5*ms || iv < tc.wantIntv || iv > tc.wantIntv+5*ms {
				t.Errorf("pathTiming(%s, dials %v, 300ms, 500ms, %+v) = %v, %v; want %v, %v", tc.kind, tc.dials, tc.r, to, iv, tc.wantTimeout, tc.wantIntv)
			}
		})
	}
}

// TestCheckerLearnsPath: a remote endpoint 200ms away whose HTTP answer
// takes two round trips fails the configured 300ms timeout, but not the
// learnt one: it is up after the first probe, and stays up. The same
// endpoint as a local target fails every probe.
func TestCheckerLearnsPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 200 * time.Millisecond
		wan := func(ctx context.Context, _ netip.AddrPort) error {
			tr, _ := ctx.Value(traceKey{}).(*probeTrace)
			select { // the connect
			case <-time.After(rtt):
			case <-ctx.Done():
				return ctx.Err()
			}
			if tr != nil {
				tr.connect, tr.connected = rtt, true
			}
			select { // the request and its answer
			case <-time.After(rtt + 10*time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		remote := target("remote", wan)
		remote.Remote = true
		local := target("local", wan)
		r := start(t, CheckerConfig{}, remote, local)
		defer r.stop(t)
		advance(20 * time.Second)
		if got := r.state("remote"); got != Up {
			t.Errorf("remote target 200ms away = %v, want up", got)
		}
		if got := r.state("local"); got != Down {
			t.Errorf("local target 200ms away = %v, want down (no allowance for its own site)", got)
		}
		if got, _ := r.Snapshot().Get("remote"); !got.Since.Before(r.start.Add(2 * time.Second)) {
			t.Errorf("remote up since %v, want within 2s of start", got.Since.Sub(r.start))
		}
	})
}

// TestCheckerPathFromKeptConnection: a remote HTTP endpoint whose first
// connect was slow (150ms: a node starting among many others), probed
// over the connection that connect made, on a path that is fast (1ms).
// The probe on the kept connection is given one round trip of allowance,
// not two, and the estimate follows the kernel's measurement of the kept
// connection, so the timeout falls to the configured one plus a few
// milliseconds instead of staying at 700ms until the connection is
// renewed.
func TestCheckerPathFromKeptConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ms = time.Millisecond
		var (
			mu    sync.Mutex
			given []time.Duration // the timeout each probe had
		)
		p := func(ctx context.Context, _ netip.AddrPort) error {
			tr, _ := ctx.Value(traceKey{}).(*probeTrace)
			d, _ := ctx.Deadline()
			mu.Lock()
			given = append(given, time.Until(d))
			n := len(given)
			mu.Unlock()
			if tr == nil || !tr.wantRTT {
				t.Error("remote probe not asked for the kernel's round trip")
				return nil
			}
			if n == 1 { // dials, slowly, and keeps the connection
				time.Sleep(150 * ms)
				tr.connect, tr.connected = 150*ms, true
				c, peer := net.Pipe()
				t.Cleanup(func() { peer.Close() })
				tr.conns.put(&keptConn{conn: c, retire: time.Now().Add(time.Hour)})
				time.Sleep(ms)
				return nil
			}
			time.Sleep(ms)
			tr.srtt, tr.rttvar, tr.sampled = ms, ms/2, true
			return nil
		}
		remote := target("remote", p)
		remote.Kind, remote.Remote = "http", true
		r := start(t, CheckerConfig{}, remote)
		defer r.stop(t)
		advance(10 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		if len(given) < 10 {
			t.Fatalf("%d probes in 10s", len(given))
		}
		// Before any measurement: two round trips of MaxPathAllowance.
		if want := 300*ms + 2*MaxPathAllowance; given[0] != want {
			t.Errorf("first probe's timeout = %v, want %v", given[0], want)
		}
		// Kept connection, estimate from the slow connect (RTO 450ms,
		// capped at 200ms): one round trip of it.
		if want := 300*ms + MaxPathAllowance; given[1] != want {
			t.Errorf("first probe on the kept connection: timeout %v, want %v (one round trip)", given[1], want)
		}
		// The kernel's 1ms ± 0.5ms: RTO 3ms.
		if last, want := given[len(given)-1], 303*ms; last != want {
			t.Errorf("timeout after 10s on a fast path = %v, want %v (all timeouts: %v)", last, want, given)
		}
	})
}
