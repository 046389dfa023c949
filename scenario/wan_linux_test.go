package scenario

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	wanFor = flag.Duration("scenario.wan", envDuration("GSLBD_SCENARIO_WAN", 0),
		"run TestWAN for this long: loss and delay on every inter-site link, nothing failing (on demand, as root; 0: skipped)")
	wanLoss = flag.Int("scenario.wanloss", envInt("GSLBD_SCENARIO_WANLOSS", 10),
		"the loss, in percent, on every inter-site link under a WAN (TestWAN, TestNetworkFaults, TestSoak)")
	wanDelay = flag.Duration("scenario.wandelay", envDuration("GSLBD_SCENARIO_WANDELAY", 100*time.Millisecond),
		"the one-way delay added on every inter-site link under a WAN (TestWAN, TestNetworkFaults, TestSoak)")
)

// TestWAN (on demand: -scenario.wan=10m, as root) runs the
// network-namespace cluster of TestNetworkFaults with nothing failing
// while every inter-site link loses -scenario.wanloss percent of its
// packets and delays the rest by -scenario.wandelay each way (the delay
// line: see delayLine), for the given time. It prints, per node, the
// digs, answer changes and failed digs, the packets the line delayed and
// dropped, and the TCP connect round trip into the node from the other
// sites before and during the WAN, so that the delay is measured rather
// than assumed. It fails on any answer change and on a round trip that
// did not grow by at least 1.5 times the delay.
func TestWAN(t *testing.T) {
	if *wanFor <= 0 {
		t.Skip("skipped: the WAN run is on demand: go test ./scenario -run TestWAN -v -count=1 -scenario.wan=10m -timeout 30m (as root)")
	}
	requireLab(t)
	dig := requireDig(t)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < *wanFor+5*time.Minute {
		t.Fatalf("-timeout too short for -scenario.wan=%s: give it at least %s", *wanFor, (*wanFor + 5*time.Minute).Round(time.Minute))
	}
	bin := gslbdBinary(t)
	lab := newNetLab(t, netClientIP, labSites(netThreeSites))
	h := newHarnessIn(t, bin, dig, netThreeSites, lab)
	ctx := t.Context()
	h.startAll(t, ctx)
	stats := &digStats{}
	w := h.wanPhase(ctx, lab, *wanLoss, *wanDelay, *wanFor, stats)
	// The cluster is whole again once the links are clean.
	h.settle(ctx, "the WAN")
	ds := summarize(stats.durs)
	t.Logf("WAN run (one dig run: median %ss, p99 %ss)\n%s", secs(ds.median), secs(ds.p99), w.report(h))
	w.check(h)
}

// wanRun is what one WAN phase (wanPhase) saw.
type wanRun struct {
	how   string
	line  bool // through the delay line (else loss only, on the bridge)
	loss  int  // percent
	delay time.Duration
	st    *stability
	// counts is what the line did during the phase.
	counts lineCounts

	// mu guards direct, over and failed: per node, the TCP connect
	// round trips into it from the other sites' namespaces before the
	// WAN (direct) and during it (over), and the connects that failed
	// during it.
	mu       sync.Mutex
	direct   map[string][]time.Duration
	over     map[string][]time.Duration
	failed   map[string]int
	examples []string
}

// wanPhase puts loss and delay on every inter-site link (netLab.wan) for
// d with nothing failing, watches every node's answers meanwhile (they
// must not change), and measures the round trip between the sites: three
// rounds of TCP connects into every node from every other site before,
// and a round every d/100 (at least every second) during the phase. The
// links are clean again when it returns.
func (h *harness) wanPhase(ctx context.Context, lab *netLab, pct int, delay, d time.Duration, stats *digStats) *wanRun {
	t := h.t
	t.Helper()
	w := &wanRun{loss: pct, delay: delay, direct: map[string][]time.Duration{}, over: map[string][]time.Duration{}, failed: map[string]int{}}
	for range 3 {
		w.connectRound(ctx, h, lab, false)
	}
	how, err := lab.wan(pct, delay)
	if err != nil {
		t.Fatal(err)
	}
	w.how, w.line = how, lab.line != nil
	var before lineCounts
	var sampling sync.WaitGroup
	sctx, stop := context.WithCancel(ctx)
	if w.line {
		before = lab.line.counters()
		sampling.Go(func() {
			tick := time.NewTicker(max(d/100, time.Second))
			defer tick.Stop()
			for {
				w.connectRound(sctx, h, lab, true)
				select {
				case <-tick.C:
				case <-sctx.Done():
					return
				}
			}
		})
	}
	w.st = h.watch(ctx, d, h.steady("dc1"), stats)
	stop()
	sampling.Wait()
	if w.line {
		w.counts = lab.line.counters().minus(before)
	}
	if err := lab.noWAN(); err != nil {
		t.Fatal(err)
	}
	return w
}

// connectRound opens one TCP connection into every node's admin port from
// every other site's namespace, all at once, and records how long each
// connect took (in over during the WAN, else in direct).
func (w *wanRun) connectRound(ctx context.Context, h *harness, lab *netLab, during bool) {
	var wg sync.WaitGroup
	for _, n := range h.nodes {
		for _, site := range slices.Sorted(maps.Keys(lab.sites)) {
			if site == n.site {
				continue
			}
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				took, err := lab.connectTime(cctx, site, n.admin)
				if ctx.Err() != nil {
					return // the phase ended under it: not a measurement
				}
				w.mu.Lock()
				defer w.mu.Unlock()
				switch {
				case err != nil && during:
					w.failed[n.name]++
					if len(w.examples) < 5 {
						w.examples = append(w.examples, fmt.Sprintf("%s: connect from %s to %s (%s): %v", time.Now().Format("15:04:05.000"), site, n.name, n.admin, err))
					}
				case err != nil:
					h.t.Errorf("connect from %s to %s (%s) before the WAN: %v", site, n.name, n.admin, err)
				case during:
					w.over[n.name] = append(w.over[n.name], took)
				default:
					w.direct[n.name] = append(w.direct[n.name], took)
				}
			})
		}
	}
	wg.Wait()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// report prints, per node, the answers, the line's packets and the round
// trips; then the line's counts per direction.
func (w *wanRun) report(h *harness) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, for %s, nothing failing\n", w.how, w.st.d)
	fmt.Fprintf(&b, "  %-8s %6s %7s %6s | %-31s | %s\n", "", "", "answer", "failed", "line packets, by node address",
		"TCP connect round trip into the node from the other sites, ms")
	fmt.Fprintf(&b, "  %-8s %6s %7s %6s | %7s %7s %7s %7s | %7s | %7s %7s %7s %7s %5s %6s\n",
		"node", "digs", "changes", "digs", "out", "dropped", "in", "dropped", "direct", "min", "median", "p99", "max", "n", "failed")
	for _, n := range h.nodes {
		ns := w.st.nodes[n.name]
		c := w.counts.addrs[n.ip]
		dir, over := summarize(w.direct[n.name]), summarize(w.over[n.name])
		fmt.Fprintf(&b, "  %-8s %6d %7d %6d | %7d %7d %7d %7d | %7s | %7s %7s %7s %7s %5d %6d\n",
			n.name, ns.queries, ns.changes, ns.errors, c[0], c[1], c[2], c[3],
			ms(dir.median), ms(over.min), ms(over.median), ms(over.p99), ms(over.max), over.n, w.failed[n.name])
	}
	b.WriteString("  (out: packets from the node's address that the line delayed, then dropped; in: to it. A site's\n" +
		"  unbound sockets, its nodes' health probes among them, send from its first address. direct: the\n" +
		"  median of three connects over the bridge before the WAN. A connect whose SYN or SYN-ACK is lost\n" +
		"  takes a retransmission, 1s more.)\n")
	for _, n := range h.nodes {
		for _, e := range w.st.nodes[n.name].examples {
			fmt.Fprintf(&b, "  %s: %s\n", n.name, e)
		}
	}
	for _, e := range w.examples {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	if w.line {
		delayed, dropped := w.counts.total()
		fmt.Fprintf(&b, "delay line: %d packets delayed, %d dropped (%.2f%%)\n", delayed, dropped, pct(dropped, delayed+dropped))
		b.WriteString(w.counts.dirTable())
	}
	return b.String()
}

// check fails the test on any answer change under the WAN and, with the
// delay line, on a line that did not carry every node's traffic, dropped
// far from the share asked for, overflowed, or did not add the delay to
// the round trip: the fastest connect into each node during the WAN must
// be at least 1.5 times the delay (two one-way delays make the round
// trip) above the median before it, and at most twice the delay plus 1s.
func (w *wanRun) check(h *harness) {
	t := h.t
	t.Helper()
	for _, n := range h.nodes {
		if ns := w.st.nodes[n.name]; ns.changes > 0 || !ns.firstOK {
			t.Errorf("%s under %s: %d answer changes (first answer right: %v), want none", n.name, w.how, ns.changes, ns.firstOK)
		}
	}
	if !w.line {
		return
	}
	if w.counts.overflow > 0 {
		t.Errorf("delay line: %d packets dropped on a full queue, want none (the loss would be more than asked for)", w.counts.overflow)
	}
	delayed, dropped := w.counts.total()
	if all := delayed + dropped; all >= 500 && w.loss > 0 {
		if share := float64(dropped) / float64(all); share < float64(w.loss)/200 || share > float64(w.loss)/50 {
			t.Errorf("delay line dropped %d of %d packets (%.2f%%), want about %d%%", dropped, all, 100*share, w.loss)
		}
	}
	for _, n := range h.nodes {
		if c := w.counts.addrs[n.ip]; c[0] == 0 || c[2] == 0 {
			t.Errorf("%s: the delay line carried %d packets from it and %d to it, want both: its inter-site traffic did not take the line", n.name, c[0], c[2])
		}
		dir, over := summarize(w.direct[n.name]), summarize(w.over[n.name])
		switch {
		case over.n == 0:
			t.Errorf("%s: no TCP connect into it from another site succeeded under the WAN (%d failed)", n.name, w.failed[n.name])
		case over.min-dir.median < 3*w.delay/2:
			t.Errorf("%s: connect round trip from the other sites %s at the fastest under the WAN, %s before: added %s, want at least 1.5 × %s",
				n.name, over.min, dir.median, over.min-dir.median, w.delay)
		case over.min > 2*w.delay+time.Second:
			t.Errorf("%s: connect round trip from the other sites %s at the fastest under the WAN, want at most 2 × %s + 1s", n.name, over.min, w.delay)
		}
	}
}
