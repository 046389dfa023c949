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
	kindDrain           = "4 dc1 drained"
	kindUndrain         = "4 dc1 undrained"
	kindRestartStop     = "5 drained: stop (SIGTERM)"
	kindRestartServe    = "5 drained: restart, serve"
	kindRestartUndrain  = "5 undrained after restart"
	kindColdServe       = "6 cold start: serve"
	kindColdReturn      = "6 cold start: dc1 returns"
)

// Invariants: answers that must never be seen. Each is checked on every
// answer of its phase.
const (
	invDrainRestart = "5 drain held across restart: no dc1 answer"
	invColdStart    = "6 cold start: no dc1 answer before endpoints"
)

// Bounds the test asserts: generous ones by default, the targets with
// -scenario.strict. Drains have the failover target.
func bounds() (fail, ret time.Duration) {
	if *strict {
		return time.Second, 2 * time.Second
	}
	return 5 * time.Second, 10 * time.Second
}

// shortTrials is the default of -scenario.trials: the short form.
const shortTrials = 3

// coldStarts is how many cold-start trials run: one in the short form,
// -scenario.trials in a longer one.
func coldStarts() int {
	if *trials <= shortTrials {
		return 1
	}
	return *trials
}

// scenarioRun is one run of the scenario: its processes, what it measured
// and the answers that broke an invariant.
type scenarioRun struct {
	t     *testing.T
	ctx   context.Context
	h     *harness
	res   *results
	stats *digStats
	// breaches holds, per invariant, the answers that broke it.
	breaches map[string][]string
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

	h.startAll(t, ctx)

	r := &scenarioRun{
		t: t, ctx: ctx, h: h, stats: &digStats{}, breaches: map[string][]string{},
		res: newResults(kindEndpointsFail, kindEndpointsReturn, kindSiteDies, kindSiteReturns,
			kindDrain, kindUndrain, kindRestartStop, kindRestartServe, kindRestartUndrain,
			kindColdServe, kindColdReturn),
	}
	for i := range *trials {
		r.endpointsTrial(i)
	}
	for i := range *trials {
		r.siteTrial(i)
	}
	for i := range *trials {
		r.drainTrial(i)
	}
	r.drainAcrossRestart()
	for i := range coldStarts() {
		r.coldStart(i)
	}

	// Stability: nothing fails, nothing may change.
	stab := h.watch(ctx, *stable, h.steady("dc1"), r.stats)

	var names []string
	for _, n := range h.nodes {
		names = append(names, n.name)
	}
	digRun := summarize(r.stats.durs)
	report := fmt.Sprintf("gslbd 3-site scenario: %d trials each of 1 to 4, one of 5, %d of 6, stability %s, %d dig runs (one run: median %ss, p99 %ss; the resolution of every figure), %s in all\n%s%s",
		*trials, coldStarts(), *stable, r.stats.count, secs(digRun.median), secs(digRun.p99), time.Since(began).Round(time.Second),
		r.res.table(names), stab.table(names))
	exits := h.unexpectedExits()
	if len(exits) > 0 {
		report += "processes that ended without the test killing them (the figures above are suspect)\n  " +
			strings.Join(exits, "\n  ") + "\n"
	}
	report += r.targets(stab)
	t.Log("\n" + report)
	fmt.Print(report)

	for _, e := range exits {
		t.Errorf("process ended without the test killing it: %s", e)
	}
	failBound, retBound := bounds()
	for _, k := range []string{kindEndpointsFail, kindSiteDies, kindDrain, kindUndrain, kindRestartUndrain} {
		if s := summarize(r.res.every[k]); s.p99 > failBound {
			t.Errorf("%s: p99 %ss until every node, want at most %s", k, secs(s.p99), failBound)
		}
	}
	for _, k := range []string{kindEndpointsReturn, kindSiteReturns, kindColdReturn} {
		if s := summarize(r.res.every[k]); s.p99 > retBound {
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

// record adds the time from t0 to each node's first answer that met the
// condition, 0 for an answer that returned before t0. An answer that
// returned before notBefore cannot be right and is an error; early says
// what notBefore is.
func (r *scenarioRun) record(kind string, i int, t0, notBefore time.Time, early string, got map[string]answer, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("%s, trial %d: %v", kind, i+1, err)
	}
	times := map[string]time.Duration{}
	for name, a := range got {
		times[name] = max(a.end.Sub(t0), 0)
		if a.end.Before(notBefore) {
			r.t.Errorf("%s, trial %d: %s answered %s %ss %s", kind, i+1, name, a, secs(notBefore.Sub(a.end)), early)
		}
	}
	r.add(kind, i, times)
}

// add records one trial's per-node times and logs them.
func (r *scenarioRun) add(kind string, i int, times map[string]time.Duration) {
	r.t.Helper()
	slowest := r.res.add(kind, times)
	r.t.Logf("%s, trial %d: every node after %ss (%s)", kind, i+1, secs(slowest), perNode(times))
}

// breach records answers that broke inv. The first few become test
// errors; the report counts them all.
func (r *scenarioRun) breach(inv string, answers []string) {
	r.t.Helper()
	const shown = 10
	for j, a := range answers {
		if len(r.breaches[inv])+j < shown {
			r.t.Errorf("%s: %s", inv, a)
		}
	}
	r.breaches[inv] = append(r.breaches[inv], answers...)
}

// endpointsTrial is trial 1: dc1's endpoints die while its nodes keep
// running, then come back.
func (r *scenarioRun) endpointsTrial(i int) {
	h := r.h
	_, dc1Eps := h.sitesOf("dc1")
	t0, ps := h.kill(nil, dc1Eps)
	got, err := h.pollUntil(r.ctx, h.nodes, h.noSite("dc1"), r.stats)
	r.record(kindEndpointsFail, i, t0, t0, "before the endpoints were killed", got, err)
	reap(ps)
	p := h.startPolling(r.ctx, h.nodes, h.onlySite("dc1"), r.stats)
	t0, err = h.startEndpoints(dc1Eps)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err = p.wait()
	r.record(kindEndpointsReturn, i, t0, t0, "before the first dc1 endpoint accepted connections", got, err)
	h.settle(r.ctx, fmt.Sprintf("trial 1.%d", i+1))
}

// siteTrial is trials 2 and 3: dc1 dies whole, then its nodes and
// endpoints start again together.
func (r *scenarioRun) siteTrial(i int) {
	h := r.h
	dc1Nodes, dc1Eps := h.sitesOf("dc1")
	var survivors []*node
	for _, n := range h.nodes {
		if n.site != "dc1" {
			survivors = append(survivors, n)
		}
	}
	t0, ps := h.kill(dc1Nodes, dc1Eps)
	got, err := h.pollUntil(r.ctx, survivors, h.noSite("dc1"), r.stats)
	r.record(kindSiteDies, i, t0, t0, "before dc1 was killed", got, err)
	reap(ps)
	p := h.startPolling(r.ctx, h.nodes, h.onlySite("dc1"), r.stats)
	if _, err := h.startNodes(dc1Nodes); err != nil {
		r.t.Fatal(err)
	}
	t0, err = h.startEndpoints(dc1Eps)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err = p.wait()
	r.record(kindSiteReturns, i, t0, t0, "before the first dc1 endpoint accepted connections", got, err)
	h.settle(r.ctx, fmt.Sprintf("trial 3.%d", i+1))
}

// startAll starts every endpoint and node of h and waits until they settle.
func (h *harness) startAll(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := h.startEndpoints(h.eps); err != nil {
		t.Fatal(err)
	}
	if _, err := h.startNodes(h.nodes); err != nil {
		t.Fatal(err)
	}
	h.settle(ctx, "start")
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
func (r *scenarioRun) targets(st *stability) string {
	var b strings.Builder
	b.WriteString("targets\n")
	check := func(what string, ok bool) {
		verdict := "met"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "  %-58s %s\n", what, verdict)
	}
	for _, k := range []string{kindEndpointsFail, kindSiteDies, kindDrain, kindUndrain, kindRestartUndrain} {
		check(k+": p99 <= 1s on every node", summarize(r.res.every[k]).p99 <= time.Second)
	}
	for _, k := range []string{kindEndpointsReturn, kindSiteReturns, kindColdReturn} {
		check(k+": p99 <= 2s on every node", summarize(r.res.every[k]).p99 <= 2*time.Second)
	}
	for _, inv := range []string{invDrainRestart, invColdStart} {
		what := inv
		if n := len(r.breaches[inv]); n > 0 {
			what = fmt.Sprintf("%s (%d seen)", inv, n)
		}
		check(what, len(r.breaches[inv]) == 0)
	}
	changes := 0
	for _, ns := range st.nodes {
		changes += ns.changes + ns.errors
	}
	check("stable: no answer changes, no failed digs", changes == 0)
	return b.String()
}
