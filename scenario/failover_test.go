package scenario

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Trial kinds, in the order of the table.
const (
	kindEndpointsFail   = "1 dc1 endpoints fail"
	kindEndpointsReturn = "1 dc1 endpoints return"
	kindSiteDies        = "2 dc1 site dies"
	kindSiteReturns     = "3 dc1 site returns"
)

// Bounds the test asserts: generous ones by default, the targets with
// -scenario.strict.
func bounds() (fail, ret time.Duration) {
	if *strict {
		return time.Second, 2 * time.Second
	}
	return 5 * time.Second, 10 * time.Second
}

func TestFailover(t *testing.T) {
	dig := requireDig(t)
	if *trials < 1 {
		t.Fatalf("-scenario.trials=%d: want at least 1", *trials)
	}
	bin := gslbdBinary(t)
	h := newHarness(t, bin, dig)
	ctx := t.Context()
	began := time.Now()

	if _, err := h.startEndpoints(h.eps); err != nil {
		t.Fatal(err)
	}
	for _, n := range h.nodes {
		if err := h.startNode(n); err != nil {
			t.Fatal(err)
		}
	}
	h.settle(ctx, "start")

	dc1Nodes, dc1Eps := h.sitesOf("dc1")
	var survivors []*node
	for _, n := range h.nodes {
		if n.site != "dc1" {
			survivors = append(survivors, n)
		}
	}
	res := newResults(kindEndpointsFail, kindEndpointsReturn, kindSiteDies, kindSiteReturns)
	stats := &digStats{}
	// record adds the time from t0 to each node's first answer that met
	// the condition. The pollers of a return start before the endpoints
	// do, so an answer that came before t0 means a node handed out dc1
	// while none of its endpoints accepted connections.
	record := func(kind string, i int, t0 time.Time, got map[string]answer, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s, trial %d: %v", kind, i+1, err)
		}
		times := map[string]time.Duration{}
		for name, a := range got {
			times[name] = max(a.end.Sub(t0), 0)
			if a.end.Before(t0) {
				t.Errorf("%s, trial %d: %s answered %s %s before the first dc1 endpoint accepted connections",
					kind, i+1, name, a, t0.Sub(a.end))
			}
		}
		slowest := res.add(kind, times)
		t.Logf("%s, trial %d: every node after %ss (%s)", kind, i+1, secs(slowest), perNode(times))
	}

	// Trial 1: dc1's endpoints die while its nodes keep running, then come
	// back.
	for i := range *trials {
		t0, ps := h.kill(nil, dc1Eps)
		got, err := h.pollUntil(ctx, h.nodes, h.noSite("dc1"), stats)
		record(kindEndpointsFail, i, t0, got, err)
		reap(ps)
		p := h.startPolling(ctx, h.nodes, h.onlySite("dc1"), stats)
		t0, err = h.startEndpoints(dc1Eps)
		if err != nil {
			t.Fatal(err)
		}
		got, err = p.wait()
		record(kindEndpointsReturn, i, t0, got, err)
		h.settle(ctx, fmt.Sprintf("trial 1.%d", i+1))
	}

	// Trials 2 and 3: dc1 dies whole, then its nodes and endpoints start
	// again together.
	for i := range *trials {
		t0, ps := h.kill(dc1Nodes, dc1Eps)
		got, err := h.pollUntil(ctx, survivors, h.noSite("dc1"), stats)
		record(kindSiteDies, i, t0, got, err)
		reap(ps)
		p := h.startPolling(ctx, h.nodes, h.onlySite("dc1"), stats)
		for _, n := range dc1Nodes {
			if err := h.startNode(n); err != nil {
				t.Fatal(err)
			}
		}
		t0, err = h.startEndpoints(dc1Eps)
		if err != nil {
			t.Fatal(err)
		}
		got, err = p.wait()
		record(kindSiteReturns, i, t0, got, err)
		h.settle(ctx, fmt.Sprintf("trial 3.%d", i+1))
	}

	// Stability: nothing fails, nothing may change.
	stab := h.watch(ctx, *stable, h.steady("dc1"), stats)

	var names []string
	for _, n := range h.nodes {
		names = append(names, n.name)
	}
	digRun := summarize(stats.durs)
	report := fmt.Sprintf("gslbd 3-site failover scenario: %d trials each, stability %s, %d dig runs (one run: median %ss, p99 %ss; the resolution of every figure), %s in all\n%s%s",
		*trials, *stable, stats.count, secs(digRun.median), secs(digRun.p99), time.Since(began).Round(time.Second),
		res.table(names), stab.table(names))
	exits := h.unexpectedExits()
	if len(exits) > 0 {
		report += "processes that ended without the test killing them (the figures above are suspect)\n  " +
			strings.Join(exits, "\n  ") + "\n"
	}
	report += targets(res, stab)
	t.Log("\n" + report)
	fmt.Print(report)

	for _, e := range exits {
		t.Errorf("process ended without the test killing it: %s", e)
	}
	failBound, retBound := bounds()
	for _, k := range []string{kindEndpointsFail, kindSiteDies} {
		if s := summarize(res.every[k]); s.p99 > failBound {
			t.Errorf("%s: p99 %ss until every node, want at most %s", k, secs(s.p99), failBound)
		}
	}
	for _, k := range []string{kindEndpointsReturn, kindSiteReturns} {
		if s := summarize(res.every[k]); s.p99 > retBound {
			t.Errorf("%s: p99 %ss until every node, want at most %s", k, secs(s.p99), retBound)
		}
	}
	for _, n := range names {
		if st := stab.nodes[n]; st.changes > 0 || st.errors > 0 || !st.firstOK {
			t.Errorf("stability: %s: %d answer changes and %d failed digs in %d, first answer as expected: %v; first changes: %s",
				n, st.changes, st.errors, st.queries, st.firstOK, strings.Join(st.examples, "; "))
		}
	}
}

// settle waits until every node answers all of dc1 and the cluster has
// converged, so that each trial starts from the same healthy state.
func (h *harness) settle(ctx context.Context, after string) {
	h.t.Helper()
	if _, err := h.pollUntil(ctx, h.nodes, h.steady("dc1"), nil); err != nil {
		h.t.Fatalf("after %s: %v", after, err)
	}
	if err := h.waitConverged(ctx); err != nil {
		h.t.Fatalf("after %s: %v", after, err)
	}
}

func perNode(times map[string]time.Duration) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(times)) {
		parts = append(parts, n+" "+secs(times[n]))
	}
	return strings.Join(parts, ", ")
}

// stability is what the stability phase saw.
type stability struct {
	d     time.Duration
	nodes map[string]*nodeStability
}

type nodeStability struct {
	queries, changes, errors int
	firstOK                  bool     // the first answer met the condition
	examples                 []string // the first few changes and errors
}

// watch polls every node for d and counts, per node, the answers that
// differ from that node's previous one, and failed digs.
func (h *harness) watch(ctx context.Context, d time.Duration, want condition, stats *digStats) *stability {
	st := &stability{d: d, nodes: map[string]*nodeStability{}}
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for _, n := range h.nodes {
		ns := &nodeStability{}
		st.nodes[n.name] = ns
		wg.Go(func() {
			var prev answer
			for time.Now().Before(end) && ctx.Err() == nil {
				a := h.digOnce(ctx, n)
				stats.add(a)
				ns.queries++
				switch {
				case a.err != nil:
					ns.errors++
					ns.note(fmt.Sprintf("%s: %s", a.end.Format("15:04:05.000"), a))
				case ns.queries == 1:
					ns.firstOK = want.ok(a)
				case !a.same(prev):
					ns.changes++
					ns.note(fmt.Sprintf("%s: %s -> %s", a.end.Format("15:04:05.000"), prev, a))
				}
				if a.err == nil {
					prev = a
				}
				time.Sleep(pollGap)
			}
		})
	}
	wg.Wait()
	return st
}

func (ns *nodeStability) note(s string) {
	if len(ns.examples) < 5 {
		ns.examples = append(ns.examples, s)
	}
}

func (st *stability) table(nodes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stability, %s with nothing failing\n  %-10s %8s %8s %8s\n", st.d, "node", "digs", "changes", "errors")
	for _, n := range nodes {
		ns := st.nodes[n]
		fmt.Fprintf(&b, "  %-10s %8d %8d %8d\n", n, ns.queries, ns.changes, ns.errors)
		for _, e := range ns.examples {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	return b.String()
}

// targets says which of the product's targets the run met.
func targets(res *results, st *stability) string {
	var b strings.Builder
	b.WriteString("targets\n")
	check := func(what string, ok bool) {
		verdict := "met"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "  %-58s %s\n", what, verdict)
	}
	for _, k := range []string{kindEndpointsFail, kindSiteDies} {
		check(k+": p99 <= 1s on every node", summarize(res.every[k]).p99 <= time.Second)
	}
	for _, k := range []string{kindEndpointsReturn, kindSiteReturns} {
		check(k+": p99 <= 2s on every node", summarize(res.every[k]).p99 <= 2*time.Second)
	}
	changes := 0
	for _, ns := range st.nodes {
		changes += ns.changes + ns.errors
	}
	check("stable: no answer changes, no failed digs", changes == 0)
	return b.String()
}
