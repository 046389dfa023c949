package scenario

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	netTrials = flag.Int("scenario.nettrials", envInt("GSLBD_SCENARIO_NETTRIALS", 2),
		"how many times each network fault of TestNetworkFaults runs")
	netLoss = flag.Duration("scenario.netloss", envDuration("GSLBD_SCENARIO_NETLOSS", 10*time.Second),
		"how long TestNetworkFaults holds its WAN (-scenario.wanloss and -scenario.wandelay on every inter-site link)")
)

// The network-fault scenario's layout: threeSites on lab addresses, each
// site in its own network namespace.
var netThreeSites = layout{
	nodes: []struct{ name, site, ip string }{
		{"dc1-a", "dc1", "10.0.1.1"},
		{"dc1-b", "dc1", "10.0.1.2"},
		{"dc2-a", "dc2", "10.0.2.1"},
		{"dc3-a", "dc3", "10.0.3.1"},
	},
	endpoints: []struct{ site, ip string }{
		{"dc1", "10.0.1.10"},
		{"dc1", "10.0.1.11"},
		{"dc2", "10.0.2.10"},
		{"dc3", "10.0.3.10"},
	},
}

const netClientIP = "10.0.0.100"

// labSites returns each site's addresses, nodes and endpoints.
func labSites(lay layout) map[string][]string {
	out := map[string][]string{}
	for _, n := range lay.nodes {
		out[n.site] = append(out[n.site], n.ip)
	}
	for _, e := range lay.endpoints {
		out[e.site] = append(out[e.site], e.ip)
	}
	return out
}

// Fault kinds, in the order of the table.
const (
	kindBlackHoleOut   = "a dc1 black-holed: out"
	kindBlackHoleBack  = "a black hole healed: dc1 back"
	kindBlackHoleWhole = "a black hole healed: membership"
	kindKilledOut      = "b dc1 killed: out"
	kindKilledBack     = "b dc1 restarted: dc1 back"
	kindHungOut        = "c dc1 endpoints hung: out"
	kindHungBack       = "c dc1 endpoints resumed: back"
	kindCutOut         = "d sites cut: dc1 out at dc2, dc3"
	kindCutBack        = "d cut healed: dc1 back"
	kindCutWhole       = "d cut healed: membership"
	kindCutDrains      = "d cut healed: drains everywhere"
)

// TestNetworkFaults runs the three-site cluster of TestFailover on real
// separate network stacks: every site in its own network namespace, the
// client (dig, admin calls) in another, all joined by veth pairs to a
// bridge, real gslbd processes and real HTTP endpoints inside (see
// scenario/doc.go). It injects, -scenario.nettrials times each:
//
//   - a black-holed site: nftables drops everything to and from dc1, so
//     probes and gossip time out rather than being refused;
//   - a killed site: the black hole plus SIGKILL of dc1's nodes and
//     endpoints, then a restart;
//   - hung endpoints: dc1's endpoints stopped with SIGSTOP, their kernel
//     still accepting connections that are never answered;
//   - inter-site links cut: dc1 exchanges nothing with dc2 and dc3 while
//     the client still reaches every site. dc1's nodes must keep
//     answering dc1, dc2's and dc3's must move away from it once and stay
//     there (no flapping), and a drain written on each side during the
//     split must be in force everywhere after the heal; the one written
//     on the majority side must say that it is incomplete and which nodes
//     it cannot reach.
//
// and then a WAN, 10% loss and 100ms delay each way on every inter-site
// link (the delay line; -scenario.wanloss and -scenario.wandelay) for
// -scenario.netloss, during which no node's answer may change and the
// round trip between the sites must have grown by the delay. It prints, per fault, min / median / p99 / max
// seconds until every surviving node answers without dc1 and the times
// back after healing. Root only: elsewhere it is skipped.
func TestNetworkFaults(t *testing.T) {
	requireLab(t)
	dig := requireDig(t)
	if *netTrials < 1 {
		t.Fatalf("-scenario.nettrials=%d: want at least 1", *netTrials)
	}
	bin := gslbdBinary(t)
	lab := newNetLab(t, netClientIP, labSites(netThreeSites))
	h := newHarnessIn(t, bin, dig, netThreeSites, lab)
	ctx := t.Context()
	began := time.Now()
	h.startAll(t, ctx)

	res := newResults(kindBlackHoleOut, kindBlackHoleBack, kindBlackHoleWhole, kindKilledOut, kindKilledBack,
		kindHungOut, kindHungBack, kindCutOut, kindCutBack, kindCutWhole, kindCutDrains)
	stats := &digStats{}
	dc1Nodes, dc1Eps := h.sitesOf("dc1")
	var others []*node
	for _, n := range h.nodes {
		if n.site != "dc1" {
			others = append(others, n)
		}
	}
	since := func(t0 time.Time, got map[string]answer) map[string]time.Duration {
		out := map[string]time.Duration{}
		for name, a := range got {
			out[name] = a.end.Sub(t0)
		}
		return out
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	whole := func(kind string, t0 time.Time) {
		t.Helper()
		must(h.waitConverged(ctx))
		res.add(kind, map[string]time.Duration{"all": time.Since(t0)})
	}

	for i := range *netTrials {
		// a. Black hole.
		t0 := time.Now()
		must(lab.wire(blackHole("dc1")...))
		got, err := h.pollUntil(ctx, others, h.noSite("dc1"), stats)
		must(err)
		res.add(kindBlackHoleOut, since(t0, got))
		// Long enough for memberlist on each side to declare the other
		// dead: the heal must then come from the reconnect loop.
		hold(ctx, 6*time.Second)
		t0 = time.Now()
		must(lab.wire())
		got, err = h.pollUntil(ctx, h.nodes, h.steady("dc1"), stats)
		must(err)
		res.add(kindBlackHoleBack, since(t0, got))
		whole(kindBlackHoleWhole, t0)
		h.settle(ctx, fmt.Sprintf("black hole %d", i+1))

		// b. Killed site.
		t0 = time.Now()
		must(lab.wire(blackHole("dc1")...))
		_, ps := h.kill(dc1Nodes, dc1Eps)
		got, err = h.pollUntil(ctx, others, h.noSite("dc1"), stats)
		must(err)
		res.add(kindKilledOut, since(t0, got))
		reap(ps)
		must(lab.wire())
		p := h.startPolling(ctx, h.nodes, h.steady("dc1"), stats)
		t0 = time.Now()
		_, err = h.startEndpoints(dc1Eps)
		must(err)
		_, err = h.startNodes(dc1Nodes)
		must(err)
		got, err = p.wait()
		must(err)
		res.add(kindKilledBack, since(t0, got))
		h.settle(ctx, fmt.Sprintf("killed site %d", i+1))

		// c. Hung endpoints.
		t0 = time.Now()
		for _, e := range dc1Eps {
			must(e.proc.cmd.Process.Signal(syscall.SIGSTOP))
		}
		got, err = h.pollUntil(ctx, h.nodes, h.noSite("dc1"), stats)
		must(err)
		res.add(kindHungOut, since(t0, got))
		t0 = time.Now()
		for _, e := range dc1Eps {
			must(e.proc.cmd.Process.Signal(syscall.SIGCONT))
		}
		got, err = h.pollUntil(ctx, h.nodes, h.steady("dc1"), stats)
		must(err)
		res.add(kindHungBack, since(t0, got))
		h.settle(ctx, fmt.Sprintf("hung endpoints %d", i+1))

		// d. Inter-site links cut.
		h.cutTrial(ctx, lab, res, stats, dc1Nodes, others)
		h.settle(ctx, fmt.Sprintf("cut %d", i+1))
	}

	// e. A WAN: loss and delay on every inter-site link, nothing failing.
	wan := h.wanPhase(ctx, lab, *wanLoss, *wanDelay, *netLoss, stats)

	names := make([]string, len(h.nodes))
	for i, n := range h.nodes {
		names[i] = n.name
	}
	ds := summarize(stats.durs)
	t.Logf("network faults, %d trials each, in %s (one dig run: median %ss, p99 %ss)\n%s\n%s",
		*netTrials, time.Since(began).Round(time.Second), secs(ds.median), secs(ds.p99),
		res.table(append(names, "all")), wan.report(h))

	outBound, hungBound, healBound := 5*time.Second, 5*time.Second, 10*time.Second
	if *strict {
		outBound, hungBound, healBound = 3*time.Second, 2*time.Second, 5*time.Second
	}
	for kind, bound := range map[string]time.Duration{
		kindBlackHoleOut: outBound, kindKilledOut: outBound, kindCutOut: outBound, kindHungOut: hungBound,
		kindBlackHoleWhole: healBound, kindCutWhole: healBound, kindCutDrains: healBound,
	} {
		if p99 := summarize(res.every[kind]).p99; p99 > bound {
			t.Errorf("%s: p99 %s, want at most %s", kind, p99, bound)
		}
	}
	wan.check(h)
}

// cutTrial cuts dc1 off from dc2 and dc3 (the client still reaches every
// site), writes a drain on each side, heals, and records the times.
func (h *harness) cutTrial(ctx context.Context, lab *netLab, res *results, stats *digStats, dc1Nodes, others []*node) {
	t := h.t
	t.Helper()
	rec := h.startRecording(ctx, h.nodes, stats)
	t0 := time.Now()
	if err := lab.wire(cutSites("dc1")...); err != nil {
		t.Fatal(err)
	}
	got, err := rec.waitFor(ctx, others, h.noSite("dc1"), t0)
	if err != nil {
		t.Fatal(err)
	}
	res.add(kindCutOut, func() map[string]time.Duration {
		out := map[string]time.Duration{}
		for name, a := range got {
			out[name] = a.end.Sub(t0)
		}
		return out
	}())
	// Long enough for memberlist on each side to declare the other dead.
	hold(ctx, 6*time.Second)
	// A drain on each side: dc2 on dc1's side, dc3 on the other. Neither
	// changes an answer (dc1 still serves on its side, dc2 on the other).
	var acks [2]drainAck
	var ids [2]string
	for i, w := range []struct {
		n    *node
		site string
	}{{dc1Nodes[0], "dc2"}, {others[0], "dc3"}} {
		a, err := h.drainWait(ctx, w.n, w.site, "split", "1s")
		if err != nil {
			t.Fatal(err)
		}
		acks[i], ids[i] = a.Ack, a.Drain.ID
	}
	// The majority side's write cannot be complete, and must say why.
	for i, side := range [][]*node{others, dc1Nodes} {
		var cut []string
		for _, n := range side {
			cut = append(cut, n.name)
		}
		a := acks[i]
		if a.Complete || !subset(cut, a.Missing) || !subset(cut, a.Unreachable) {
			t.Errorf("drain written during the split: ack %+v, want incomplete with %v missing and unreachable", a, cut)
		}
	}
	splitEnd := time.Now()
	t1 := time.Now()
	if err := lab.wire(); err != nil {
		t.Fatal(err)
	}
	// Every node back to dc1 (dc2 and dc3 are drained now, dc1 is not).
	back, err := rec.waitFor(ctx, h.nodes, h.steady("dc1"), t1)
	if err != nil {
		t.Fatal(err)
	}
	all := rec.finish()
	res.add(kindCutBack, func() map[string]time.Duration {
		out := map[string]time.Duration{}
		for name, a := range back {
			out[name] = a.end.Sub(t1)
		}
		return out
	}())
	// What each node answered during the split: dc1's nodes dc1 all
	// along, the others without dc1 from their first such answer on.
	var wrong []string
	for _, n := range h.nodes {
		moved := false
		for _, a := range all[n.name] {
			if a.start.Before(t0) || a.end.After(splitEnd) {
				continue
			}
			switch {
			case n.site == "dc1" && !h.steady("dc1").ok(a):
				wrong = append(wrong, fmt.Sprintf("%s answered %s at %s during the split, want dc1", n.name, a, a.end.Format("15:04:05.000")))
			case n.site != "dc1" && h.noSite("dc1").ok(a):
				moved = true
			case n.site != "dc1" && moved:
				wrong = append(wrong, fmt.Sprintf("%s answered %s at %s during the split after it had moved away from dc1: a flap", n.name, a, a.end.Format("15:04:05.000")))
			}
		}
	}
	if len(wrong) > 0 {
		t.Errorf("answers during the split:\n%s", strings.Join(wrong[:min(10, len(wrong))], "\n"))
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.waitConverged(ctx))
	res.add(kindCutWhole, map[string]time.Duration{"all": time.Since(t1)})
	must(h.waitDrains(ctx, ids[:], true))
	res.add(kindCutDrains, map[string]time.Duration{"all": time.Since(t1)})
	for i, id := range ids {
		must(h.undrain(ctx, h.nodes[i], id, "split over"))
	}
	must(h.waitDrains(ctx, ids[:], false))
}

// drainAck is the ack of a drain write as the API gives it.
type drainAck struct {
	Complete    bool     `json:"complete"`
	Applied     []string `json:"applied"`
	Missing     []string `json:"missing"`
	Unreachable []string `json:"unreachable"`
}

// drainWait drains site through n, waiting up to wait for the
// acknowledgements.
func (h *harness) drainWait(ctx context.Context, n *node, site, reason, wait string) (struct {
	Drain struct {
		ID string `json:"id"`
	} `json:"drain"`
	Ack drainAck `json:"ack"`
}, error) {
	var a struct {
		Drain struct {
			ID string `json:"id"`
		} `json:"drain"`
		Ack drainAck `json:"ack"`
	}
	body := map[string]any{"site": site, "reason": reason, "wait": wait}
	err := h.api(ctx, n, http.MethodPost, "/api/v1/drains", h.writeToken, body, &a, http.StatusCreated)
	return a, err
}

// waitDrains waits until every node lists every drain of ids as in force
// (or, with want false, none of them).
func (h *harness) waitDrains(ctx context.Context, ids []string, want bool) error {
	deadline := time.Now().Add(waitBound)
	for _, n := range h.nodes {
		for {
			var list struct {
				Drains []struct {
					ID string `json:"id"`
				} `json:"drains"`
			}
			err := h.api(ctx, n, http.MethodGet, "/api/v1/drains", h.readToken, nil, &list, http.StatusOK)
			ok := err == nil
			for _, id := range ids {
				has := slices.ContainsFunc(list.Drains, func(d struct {
					ID string `json:"id"`
				}) bool {
					return d.ID == id
				})
				ok = ok && has == want
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: drains %v in force = %v not reached within %s (last: %+v, %v)", n.name, ids, want, waitBound, list, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func subset(small, big []string) bool {
	for _, s := range small {
		if !slices.Contains(big, s) {
			return false
		}
	}
	return true
}

// hold waits d or until ctx is done.
func hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
