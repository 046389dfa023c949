package health

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The Checker tests run inside synctest bubbles: timers and context
// deadlines run on a fake clock that jumps forward whenever every
// goroutine in the bubble is blocked, so seconds of probing take
// microseconds and every time measured below is exact fake time. Probes
// are fakes, because real sockets would stop the fake clock.

var (
	testAddr   = netip.MustParseAddrPort("192.0.2.1:80")
	errRefused = errors.New("connect: connection refused")
)

// Results a scripted probe can be given.
var (
	pass = func(context.Context) error { return nil }
	fail = func(context.Context) error { return errRefused }
	// hang blocks until the probe's deadline, like an endpoint that
	// stopped answering.
	hang = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
)

// script is a fake probe whose every result the test hands over, one per
// probe, so the test knows exactly when each probe happened. While a
// script is in use the test must keep feeding it: a probe left waiting
// times out like a hanging one.
type script chan func(context.Context) error

func (s script) probe(ctx context.Context, _ netip.AddrPort) error {
	select {
	case f := <-s:
		return f(ctx)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// feed gives the next probe its result, waits until the Checker has acted
// on it (or the probe blocks, for hang), and returns when the probe
// started.
func (s script) feed(f func(context.Context) error) time.Time {
	s <- f
	at := time.Now()
	synctest.Wait()
	return at
}

// flip is a fake probe whose result the test flips at any time.
type flip struct {
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func (f *flip) set(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func (f *flip) probe(context.Context, netip.AddrPort) error {
	f.calls.Add(1)
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// advance lets d of fake time pass (instantly in real time) and waits for
// the bubble to settle.
func advance(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// running is a Checker being run by a test.
type running struct {
	*Checker
	reg    *prometheus.Registry
	start  time.Time
	cancel context.CancelFunc
	done   chan error
}

// start runs a Checker for targets. The test must call stop.
func start(t *testing.T, cfg CheckerConfig, targets ...Target) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewChecker(cfg, targets, testLogger(t), reg)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Checker: c, reg: reg, start: time.Now(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	return r
}

// stop cancels Run and checks that it returns at once, without fake time
// passing: every probing goroutine, a hanging probe included, stops on
// cancellation. synctest.Test then fails if any goroutine is left.
func (r *running) stop(t *testing.T) {
	t.Helper()
	before := time.Now()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
	if d := time.Since(before); d != 0 {
		t.Errorf("Run returned %v after cancel, want at once", d)
	}
}

func (r *running) state(id string) State {
	st, _ := r.Snapshot().Get(id)
	return st.State
}

// signalled reports whether Changed holds a signal, and consumes it.
func (r *running) signalled() bool {
	select {
	case <-r.Changed():
		return true
	default:
		return false
	}
}

// The timing of the services file's defaults, which the tests' arithmetic
// assumes.
const (
	testInterval = 500 * time.Millisecond
	testTimeout  = 300 * time.Millisecond
)

// target returns a target with the services file's default timing.
func target(id string, p Probe) Target {
	return Target{ID: id, Addr: testAddr, Kind: "tcp", Probe: p, Interval: testInterval, Timeout: testTimeout, Rise: 2, Fall: 2}
}

func within(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %v, want within [%v, %v]", what, got, lo, hi)
	}
}

// TestCheckerDetectsWithinASecond shows the worst case with the defaults
// (interval 500ms, fall 2): the endpoint dies just after a successful
// probe. The next probe comes within one interval plus jitter, and its
// failure is confirmed a fifth of an interval later.
func TestCheckerDetectsWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)

		first := s.feed(pass)
		within(t, "first probe after start", first.Sub(r.start), 0, testInterval/4)
		if got := r.state("a"); got != Up {
			t.Fatalf("state after one success = %v, want up", got)
		}
		last := first
		for range 5 {
			at := s.feed(pass)
			within(t, "interval", at.Sub(last), 450*time.Millisecond, 550*time.Millisecond)
			last = at
		}
		died := last // just after this successful probe

		f1 := s.feed(fail)
		if got := r.state("a"); got != Up {
			t.Fatalf("state after one failure = %v, want up", got)
		}
		f2 := s.feed(fail)
		within(t, "confirmation delay", f2.Sub(f1), 90*time.Millisecond, 110*time.Millisecond)
		st, _ := r.Snapshot().Get("a")
		if st.State != Down || st.LastError != "connect: connection refused" || !st.Since.Equal(f2) {
			t.Fatalf("status after two failures = %+v, want down since %v with the probe error", st, f2)
		}
		within(t, "detection time", time.Since(died), 0, 660*time.Millisecond)

		// Down, the interval is back to normal.
		at := s.feed(fail)
		within(t, "interval while down", at.Sub(f2), 450*time.Millisecond, 550*time.Millisecond)
	})
}

// TestCheckerDetectsHangingEndpoint: a probe of an Up endpoint that has
// had no answer for half its timeout gets its confirmation at once,
// alongside it, with what is left of the timeout; both time out together
// and the endpoint is Down one timeout after the first hung probe
// started, at most about 0.85s after it stopped answering with the
// defaults (1.0s when the confirmation had a whole timeout of its own,
// 1.2s before hedging).
func TestCheckerDetectsHangingEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)

		died := s.feed(pass)
		h1 := s.feed(hang)
		h2 := s.feed(hang)
		// The hedge starts half a timeout into the first probe.
		within(t, "confirmation delay", h2.Sub(h1), testTimeout/2, testTimeout/2)
		if got := r.state("a"); got != Up {
			t.Fatalf("state with two probes in flight = %v, want up", got)
		}
		s.feed(pass) // blocks until h2 has timed out and the next probe is due
		st, _ := r.Snapshot().Get("a")
		if st.State != Down || st.LastError != "timeout after 300ms" {
			t.Fatalf("status after two timeouts = %+v, want down with timeout after 300ms", st)
		}
		if want := h1.Add(testTimeout); !st.Since.Equal(want) {
			t.Errorf("down since %v after the first hung probe, want %v (when both timed out)", st.Since.Sub(h1), want.Sub(h1))
		}
		within(t, "detection time", st.Since.Sub(died), 0, 850*time.Millisecond)
	})
}

// TestCheckerHedgeRefusedWhileHung: the first probe hangs, its hedge is
// refused at once: Down as soon as the first times out, with the
// timeout as the last error.
func TestCheckerHedgeRefusedWhileHung(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(pass)
		h1 := s.feed(hang)
		s.feed(fail)
		if got := r.state("a"); got != Up {
			t.Fatalf("state after the hedge failed, first probe in flight = %v, want up", got)
		}
		s.feed(pass) // the next probe
		st, _ := r.Snapshot().Get("a")
		if st.State != Down || !st.Since.Equal(h1.Add(testTimeout)) || st.LastError != "timeout after 300ms" {
			t.Errorf("status = %+v, want down since the first probe timed out (%v), with its error", st, h1.Add(testTimeout))
		}
	})
}

// TestCheckerHedgeOnNewConnection: the hedge is not lent the group's
// connection slot (an HTTP probe then dials a new connection), and a
// probe that answers within half its timeout, or of a target that is not
// Up, is not hedged.
func TestCheckerHedgeOnNewConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu     sync.Mutex
			slots  []bool // whether each probe had a connection slot
			result = pass
		)
		p := func(ctx context.Context, _ netip.AddrPort) error {
			tr, _ := ctx.Value(traceKey{}).(*probeTrace)
			mu.Lock()
			slots = append(slots, tr != nil && tr.conns != nil)
			f := result
			mu.Unlock()
			return f(ctx)
		}
		set := func(f func(context.Context) error) {
			mu.Lock()
			result = f
			mu.Unlock()
		}
		r := start(t, CheckerConfig{}, target("a", p))
		defer r.stop(t)
		advance(2 * time.Second)
		mu.Lock()
		quick := len(slots)
		for i, lent := range slots {
			if !lent {
				t.Errorf("probe %d of a quick endpoint ran without the connection slot: a hedge", i)
			}
		}
		mu.Unlock()
		set(hang)
		advance(2 * time.Second)
		if got := r.state("a"); got != Down {
			t.Fatalf("state of a hung endpoint = %v, want down", got)
		}
		mu.Lock()
		defer mu.Unlock()
		hung := slots[quick:]
		// Up: the first hung probe and its hedge; Down: probes on the
		// slot only.
		if len(hung) < 3 || !hung[0] || hung[1] || !hung[2] {
			t.Errorf("probes of the hung endpoint had a slot: %v, want the first, not its hedge, then the probes while down", hung)
		}
		for i, lent := range hung[2:] {
			if !lent {
				t.Errorf("probe %d of a Down endpoint was hedged", i+2)
			}
		}
	})
}

// TestCheckerFlipDetection flips a probe at arbitrary moments and waits
// for the verdict through Changed, as the publisher does.
func TestCheckerFlipDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p flip
		r := start(t, CheckerConfig{}, target("a", p.probe))
		defer r.stop(t)
		<-r.Changed()
		if got := r.state("a"); got != Up || !r.Snapshot().Ready() {
			t.Fatalf("state = %v, ready %v; want up and ready", got, r.Snapshot().Ready())
		}
		for i := range 20 {
			advance(time.Duration(i) * 37 * time.Millisecond) // vary the phase
			flipped := time.Now()
			p.set(errRefused)
			<-r.Changed()
			if got := r.state("a"); got != Down {
				t.Fatalf("state = %v, want down", got)
			}
			within(t, "detection time", time.Since(flipped), 0, 660*time.Millisecond)

			flipped = time.Now()
			p.set(nil)
			<-r.Changed()
			if got := r.state("a"); got != Up {
				t.Fatalf("state = %v, want up", got)
			}
			within(t, "recovery time", time.Since(flipped), 0, 660*time.Millisecond)
		}
	})
}

func TestCheckerOneLostProbeDoesNotFlip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(pass)
		s.feed(pass)
		if !r.signalled() {
			t.Fatal("no signal for unknown -> up")
		}
		before := r.Snapshot()

		lost := s.feed(fail)
		again := s.feed(pass)
		within(t, "confirmation delay", again.Sub(lost), 90*time.Millisecond, 110*time.Millisecond)
		next := s.feed(pass)
		within(t, "interval after the confirmation", next.Sub(again), 450*time.Millisecond, 550*time.Millisecond)
		s.feed(fail)
		s.feed(pass)

		if got := r.state("a"); got != Up {
			t.Errorf("state = %v, want up", got)
		}
		if r.signalled() || r.Snapshot() != before {
			t.Error("lone failures published a new snapshot")
		}
		if got := testutil.ToFloat64(r.metrics.probeFailures.WithLabelValues("tcp")); got != 2 {
			t.Errorf("probe failures = %v, want 2", got)
		}
	})
}

// TestCheckerOneSlowProbeDoesNotFlip: a probe that hangs (one lost
// packet on its connection) is hedged by a probe on a new connection,
// which succeeds; the hung one's timeout is then one failure, outvoted by
// its confirmation.
func TestCheckerOneSlowProbeDoesNotFlip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(pass)
		r.signalled()
		before := r.Snapshot()

		slow := s.feed(hang)
		hedge := s.feed(pass)
		within(t, "slow probe to its hedge", hedge.Sub(slow), testTimeout/2, testTimeout/2)
		// The slow probe was cut at its 300ms timeout; its confirmation
		// was already due then.
		after := s.feed(pass)
		within(t, "slow probe to its confirmation", after.Sub(slow), testTimeout, testTimeout)
		s.feed(pass)
		if got := r.state("a"); got != Up {
			t.Errorf("state = %v, want up", got)
		}
		if r.signalled() || r.Snapshot() != before {
			t.Error("one slow probe published a new snapshot")
		}
	})
}

func TestCheckerRecoveryWithRise2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(fail)
		s.feed(fail)
		if got := r.state("a"); got != Down {
			t.Fatalf("state after two failures from unknown = %v, want down", got)
		}
		s.feed(pass)
		if got := r.state("a"); got != Down {
			t.Fatalf("state after one success = %v, want down", got)
		}
		s.feed(fail) // a relapse resets the count
		s.feed(pass)
		if got := r.state("a"); got != Down {
			t.Fatalf("state after fail, pass = %v, want down", got)
		}
		s.feed(pass)
		st, _ := r.Snapshot().Get("a")
		if st.State != Up || st.LastError != "" {
			t.Fatalf("status after two successes = %+v, want up without error", st)
		}
	})
}

func TestCheckerRecoveryIsQuick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(fail)
		s.feed(fail)
		last := s.feed(fail)
		p1 := s.feed(pass)
		within(t, "interval while down", p1.Sub(last), 450*time.Millisecond, 550*time.Millisecond)
		p2 := s.feed(pass)
		within(t, "confirmation delay", p2.Sub(p1), 90*time.Millisecond, 110*time.Millisecond)
		if got := r.state("a"); got != Up {
			t.Fatalf("state = %v, want up", got)
		}
	})
}

// TestCheckerChangedOnlyOnTransitions counts snapshots over a long run.
func TestCheckerChangedOnlyOnTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		if r.signalled() {
			t.Fatal("signal before any probe")
		}
		s.feed(pass)
		if !r.signalled() {
			t.Fatal("no signal for unknown -> up")
		}
		up := r.Snapshot()
		for range 20 { // 10s, past FirstRoundBound too
			s.feed(pass)
		}
		if r.signalled() || r.Snapshot() != up {
			t.Fatal("signal without a transition")
		}
		s.feed(fail)
		s.feed(fail)
		if !r.signalled() || r.Snapshot() == up {
			t.Fatal("no signal for up -> down")
		}
		if r.signalled() {
			t.Fatal("two signals for one transition")
		}
		down := r.Snapshot()
		for range 20 {
			s.feed(fail)
		}
		if r.signalled() || r.Snapshot() != down {
			t.Fatal("signal without a transition while down")
		}
		if got := up.States()["a"]; got != Up {
			t.Errorf("old snapshot changed: state %v, want up", got)
		}
		for to, want := range map[string]float64{"up": 1, "down": 1} {
			if got := testutil.ToFloat64(r.metrics.transitions.WithLabelValues(to)); got != want {
				t.Errorf("transitions{to=%q} = %v, want %v", to, got, want)
			}
		}
		if got := testutil.ToFloat64(r.metrics.targetUp.WithLabelValues("a")); got != 0 {
			t.Errorf("target_up{a} = %v, want 0", got)
		}
	})
}

func TestCheckerReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := make(script), make(script)
		r := start(t, CheckerConfig{}, target("a", a.probe), target("b", b.probe))
		defer r.stop(t)
		if r.Snapshot().Ready() {
			t.Fatal("ready before probing")
		}
		// Whichever probes first gets its result first.
		select {
		case a <- pass:
		case b <- fail:
		}
		synctest.Wait()
		if r.Snapshot().Ready() {
			t.Fatal("ready with a target unknown")
		}
		select {
		case a <- pass:
		case b <- fail:
		}
		synctest.Wait()
		select {
		case a <- pass:
		case b <- fail:
		}
		synctest.Wait()
		st := r.Snapshot().States()
		if st["a"] != Up || st["b"] != Down || !r.Snapshot().Ready() {
			t.Fatalf("states %v, ready %v; want a up, b down, ready", st, r.Snapshot().Ready())
		}
	})
}

func TestCheckerFirstRoundBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p flip
		p.set(errRefused)
		tg := target("a", p.probe)
		tg.Fall = 100 // stays unknown for 100 failures
		r := start(t, CheckerConfig{FirstRoundBound: 2 * time.Second}, tg)
		defer r.stop(t)
		<-r.Changed()
		if got := time.Since(r.start); got != 2*time.Second {
			t.Errorf("ready after %v, want 2s", got)
		}
		if !r.Snapshot().Ready() || r.state("a") != Unknown {
			t.Errorf("ready %v, state %v; want ready with a unknown", r.Snapshot().Ready(), r.state("a"))
		}
		if !r.Snapshot().Up("a") {
			t.Error("Up(unknown) = false, want true (fail open)")
		}
	})
}

func TestCheckerUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pa, pb, pc flip
		r := start(t, CheckerConfig{}, target("a", pa.probe), target("b", pb.probe))
		defer r.stop(t)
		advance(time.Second)
		r.signalled()
		aBefore, _ := r.Snapshot().Get("a")
		if aBefore.State != Up || r.state("b") != Up {
			t.Fatalf("states %v, want a and b up", r.Snapshot().States())
		}

		// Keep a, drop b, add c, and drop an invalid target.
		r.Update([]Target{target("a", pa.probe), target("c", pc.probe), {ID: "bad"}})
		if !r.signalled() {
			t.Fatal("no signal for a changed target set")
		}
		snap := r.Snapshot()
		if got, _ := snap.Get("a"); got != aBefore {
			t.Errorf("a after Update = %+v, want unchanged %+v", got, aBefore)
		}
		if _, ok := snap.Get("b"); ok {
			t.Error("b still in the snapshot after removal")
		}
		if got := r.state("c"); got != Unknown {
			t.Errorf("c after Update = %v, want unknown", got)
		}
		if !snap.Ready() || snap.Len() != 2 {
			t.Errorf("ready %v len %d, want ready (sticky) with 2 targets", snap.Ready(), snap.Len())
		}
		if got := testutil.CollectAndCount(r.metrics.targetUp); got != 1 {
			t.Errorf("target_up series = %d, want 1 (a; b deleted, c unknown)", got)
		}

		bCalls := pb.calls.Load()
		advance(2 * time.Second)
		if got := r.state("c"); got != Up {
			t.Errorf("c = %v, want up", got)
		}
		if got := pb.calls.Load(); got != bCalls {
			t.Errorf("b probed %d times after removal", got-bCalls)
		}
		r.signalled() // c's transition

		// Same ID, new settings: the kept goroutine switches probes.
		var pa2 flip
		pa2.set(errRefused)
		r.Update([]Target{target("a", pa2.probe), target("c", pc.probe)})
		if r.signalled() {
			t.Error("signal for an Update that kept the same IDs")
		}
		<-r.Changed()
		if got := r.state("a"); got != Down || pa2.calls.Load() == 0 {
			t.Errorf("a = %v after %d probes with the new probe, want down", got, pa2.calls.Load())
		}
	})
}

func TestCheckerUpdateBeforeAndAfterRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pa, pb flip
		c, err := NewChecker(CheckerConfig{}, []Target{target("a", pa.probe)}, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Update([]Target{target("b", pb.probe)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		advance(time.Second)
		if pa.calls.Load() != 0 || pb.calls.Load() == 0 {
			t.Errorf("probes of a %d, b %d; want only b", pa.calls.Load(), pb.calls.Load())
		}
		if err := c.Run(ctx); err == nil {
			t.Error("second Run() = nil, want an error")
		}
		cancel()
		<-done
		// No goroutine may start after Run returned; synctest.Test
		// fails if one is left behind.
		c.Update([]Target{target("a", pa.probe)})
		advance(time.Second)
		if pa.calls.Load() != 0 {
			t.Error("target probed after Run returned")
		}
	})
}

// TestCheckerStopsWithProbesInFlight cancels Run while probes hang: they
// are cancelled through their context and Run returns at once.
func TestCheckerStopsWithProbesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var targets []Target
		for _, id := range []string{"a", "b", "c"} {
			tg := target(id, func(ctx context.Context, _ netip.AddrPort) error { <-ctx.Done(); return ctx.Err() })
			tg.Interval, tg.Timeout = 10*time.Second, 10*time.Second
			targets = append(targets, tg)
		}
		var quiet flip
		targets = append(targets, target("d", quiet.probe))
		r := start(t, CheckerConfig{}, targets...)
		advance(3 * time.Second) // a, b, c are mid-probe; d sleeps between probes
		r.stop(t)
		if got := r.Snapshot().States(); got["a"] != Unknown || got["d"] != Up {
			t.Errorf("states after stop = %v, want a unknown (cancelled probe not counted), d up", got)
		}
	})
}

func TestCheckerProbePanicIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := target("a", func(context.Context, netip.AddrPort) error { panic("boom") })
		tg.Fall = 1
		r := start(t, CheckerConfig{}, tg)
		defer r.stop(t)
		<-r.Changed()
		st, _ := r.Snapshot().Get("a")
		if st.State != Down || st.LastError != "probe panic: boom" {
			t.Errorf("status = %+v, want down with probe panic: boom", st)
		}
	})
}

func TestNewCheckerErrors(t *testing.T) {
	ok := func(context.Context, netip.AddrPort) error { return nil }
	// timed gives a target valid timing, so that each case shows one rule.
	timed := func(tg Target) Target {
		tg.Interval, tg.Timeout, tg.Rise, tg.Fall = testInterval, testTimeout, 2, 2
		return tg
	}
	tests := []struct {
		name    string
		cfg     CheckerConfig
		targets []Target
		want    string
	}{
		{"empty ID", CheckerConfig{}, []Target{timed(Target{Probe: ok})}, `health: targets[0] "": empty ID`},
		{"no probe", CheckerConfig{}, []Target{timed(Target{ID: "a"})}, `health: targets[0] "a": no probe`},
		{"timeout over interval", CheckerConfig{}, []Target{{ID: "a", Probe: ok, Interval: time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 1}},
			`health: targets[0] "a": timeout 2s exceeds interval 1s`},
		{"negative", CheckerConfig{}, []Target{{ID: "a", Probe: ok, Interval: -1, Timeout: 1, Rise: -1, Fall: -2}},
			"health: targets[0] \"a\": negative interval -1ns\nnegative rise -1\nnegative fall -2"},
		{"zero timing", CheckerConfig{}, []Target{{ID: "a", Probe: ok}},
			"health: targets[0] \"a\": no interval\nno timeout\nno rise\nno fall"},
		{"duplicate", CheckerConfig{}, []Target{timed(Target{ID: "a", Probe: ok}), timed(Target{ID: "b", Probe: ok}), timed(Target{ID: "a", Probe: ok})},
			`health: targets[2] "a": duplicate ID`},
		{"all of them", CheckerConfig{}, []Target{timed(Target{ID: "a"}), timed(Target{Probe: ok})},
			"health: targets[0] \"a\": no probe\ntargets[1] \"\": empty ID"},
		{"negative bound", CheckerConfig{FirstRoundBound: -1}, nil, "health: negative first round bound -1ns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewChecker(tc.cfg, tc.targets, nil, nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("NewChecker() error = %v, want %q", err, tc.want)
			}
			if tc.targets == nil {
				return
			}
			if err := ValidateTargets(tc.targets); err == nil || err.Error() != tc.want {
				t.Errorf("ValidateTargets() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNewCheckerKeepsTargetsAsGiven(t *testing.T) {
	ok := func(context.Context, netip.AddrPort) error { return nil }
	in := []Target{
		{ID: "a", Probe: ok, Interval: testInterval, Timeout: testTimeout, Rise: 2, Fall: 2},
		{ID: "b", Probe: ok, Interval: 2 * time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 4},
	}
	if err := ValidateTargets(in); err != nil {
		t.Fatalf("ValidateTargets() = %v, want nil", err)
	}
	ts, err := prepare(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][4]int64{
		{int64(500 * time.Millisecond), int64(300 * time.Millisecond), 2, 2},
		{int64(2 * time.Second), int64(2 * time.Second), 3, 4},
	} {
		got := [4]int64{int64(ts[i].Interval), int64(ts[i].Timeout), int64(ts[i].Rise), int64(ts[i].Fall)}
		if got != want {
			t.Errorf("prepare(%s) interval, timeout, rise, fall = %v, want %v", ts[i].ID, got, want)
		}
	}
	c, err := NewChecker(CheckerConfig{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Snapshot().Ready() || c.bound != DefaultFirstRoundBound {
		t.Errorf("checker without targets: ready %v, bound %v; want ready, %v", c.Snapshot().Ready(), c.bound, DefaultFirstRoundBound)
	}
}

func TestCheckerLogsTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf strings.Builder
		var p flip
		p.set(errRefused)
		c, err := NewChecker(CheckerConfig{}, []Target{target("a", p.probe)}, slog.New(slog.NewTextHandler(&buf, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		<-c.Changed()
		cancel()
		<-done
		want := `level=WARN msg="target state changed" target=a from=unknown to=down error="connect: connection refused"`
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log = %q, want it to contain %q", buf.String(), want)
		}
	})
}

// TestCheckerExpedite: another node saw an Up target fail; Expedite
// starts its next probe at once instead of at its turn, at most once per
// interval, and never for a target that is not Up here.
func TestCheckerExpedite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(pass)
		last := s.feed(pass)
		if got := r.state("a"); got != Up {
			t.Fatalf("state = %v, want up", got)
		}

		advance(100 * time.Millisecond)
		r.Expedite([]string{"a", "not-a-target"})
		at := s.feed(pass)
		within(t, "expedited probe after the previous one", at.Sub(last), 100*time.Millisecond, 100*time.Millisecond)
		if got := testutil.ToFloat64(r.metrics.expedited); got != 1 {
			t.Errorf("expedited probes counted: %v, want 1", got)
		}

		// Again within the interval: the probe keeps its turn.
		advance(100 * time.Millisecond)
		r.Expedite([]string{"a"})
		next := s.feed(pass)
		within(t, "probe after a second Expedite within the interval", next.Sub(at), 450*time.Millisecond, 550*time.Millisecond)

	})

	// Down here: nothing to bring forward.
	synctest.Test(t, func(t *testing.T) {
		var p flip
		p.set(errors.New("connect: connection refused"))
		r := start(t, CheckerConfig{}, target("a", p.probe))
		defer r.stop(t)
		advance(2 * time.Second)
		if got := r.state("a"); got != Down {
			t.Fatalf("state = %v, want down", got)
		}
		calls := p.calls.Load()
		r.Expedite([]string{"a"})
		advance(time.Millisecond)
		if got := testutil.ToFloat64(r.metrics.expedited); got != 0 || p.calls.Load() != calls {
			t.Errorf("Expedite of a down target: %v expedited, %d probes, want none", got, p.calls.Load()-calls)
		}
	})
}

// TestCheckerHedgeNeedsASlot: on a node already making as many new
// connections as it may (every slot of maxOwn taken), a hung probe gets
// no hedge: its confirmation comes after its timeout, as an unhedged
// probe's does, instead of adding a connection at half the timeout.
func TestCheckerHedgeNeedsASlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(pass)
		s.feed(pass)
		// Every other slot taken (the probe takes the last).
		r.own.mu.Lock()
		r.own.running += maxOwn - 1
		r.own.mu.Unlock()
		h1 := s.feed(hang)
		h2 := s.feed(hang)
		within(t, "confirmation after a hung probe with no slot free", h2.Sub(h1), testTimeout, testTimeout)
		r.own.mu.Lock()
		r.own.running -= maxOwn - 1
		r.own.mu.Unlock()
	})
}
