package scenario

import "fmt"

// coldStart is trial 6, a regression test: a node must not answer before
// its first probe round, in which it would hand out addresses it has not
// checked. Every node is killed, and dc1's endpoints too; with the
// pollers already running, the four nodes start together while dc1's
// endpoints stay dead. No node may ever answer a dc1 address (a dig may
// time out until its node serves). Once the cluster has formed, dc1's
// endpoints start, and the return is timed as in trial 1.
func (r *scenarioRun) coldStart(i int) {
	h := r.h
	_, dc1Eps := h.sitesOf("dc1")
	_, ps := h.kill(h.nodes, dc1Eps)
	reap(ps)

	rec := h.startRecording(r.ctx, h.nodes, r.stats)
	t0, err := h.startNodes(h.nodes)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err := rec.waitFor(r.ctx, h.nodes, h.noSite("dc1"), t0)
	r.record(kindColdServe, i, t0, t0, "before it was started", got, err)
	if err := h.waitConverged(r.ctx); err != nil {
		r.t.Fatalf("trial 6.%d: %v", i+1, err)
	}

	up, err := h.startEndpoints(dc1Eps)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err = rec.waitFor(r.ctx, h.nodes, h.onlySite("dc1"), up)
	r.record(kindColdReturn, i, up, up, "before the first dc1 endpoint accepted connections", got, err)
	r.t.Logf("trial 6.%d: nodes started at %s, the first dc1 endpoint accepted at %s",
		i+1, t0.Format("15:04:05.000"), up.Format("15:04:05.000"))
	r.breach(invColdStart, h.forbidden(rec.finish(), "dc1", up))
	h.settle(r.ctx, fmt.Sprintf("trial 6.%d", i+1))
}
