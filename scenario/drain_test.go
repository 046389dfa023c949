package scenario

import (
	"fmt"
	"time"
)

// drainTrial is trial 4: dc1, healthy, is drained through one node's
// admin API, then the drain is deleted through the next node's. Each is
// timed from the call's return until every node's answers show it. Trial
// i writes through nodes i and i+1 (of four), so every node takes both
// kinds of write, and each delete is made on a node that learnt of the
// drain from another.
func (r *scenarioRun) drainTrial(i int) {
	h := r.h
	via, undrainVia := h.nodes[i%len(h.nodes)], h.nodes[(i+1)%len(h.nodes)]

	p := h.startPolling(r.ctx, h.nodes, h.noSite("dc1"), r.stats)
	sent := time.Now()
	id, err := h.drainSite(r.ctx, via, "dc1", fmt.Sprintf("scenario trial 4.%d", i+1))
	t0 := time.Now()
	if err != nil {
		r.t.Fatal(err)
	}
	got, err := p.wait()
	r.t.Logf("%s, trial %d: drain %s through %s, the call took %ss", kindDrain, i+1, id, via.name, secs(t0.Sub(sent)))
	r.record(kindDrain, i, t0, sent, "before the drain was requested", got, err)

	p = h.startPolling(r.ctx, h.nodes, h.onlySite("dc1"), r.stats)
	sent = time.Now()
	err = h.undrain(r.ctx, undrainVia, id, fmt.Sprintf("scenario trial 4.%d done", i+1))
	t0 = time.Now()
	if err != nil {
		r.t.Fatal(err)
	}
	got, err = p.wait()
	r.t.Logf("%s, trial %d: deleted through %s, the call took %ss", kindUndrain, i+1, undrainVia.name, secs(t0.Sub(sent)))
	r.record(kindUndrain, i, t0, sent, "before the undrain was requested", got, err)
	h.settle(r.ctx, fmt.Sprintf("trial 4.%d", i+1))
}

// drainAcrossRestart is trial 5, once per run: with dc1 drained, every
// node is stopped gracefully (SIGTERM, all at once) and started again
// with the same state directories. Every node must keep dc1 drained from
// its first answer on: from the drain's taking effect until the undrain
// is requested, the pollers, which run throughout, must never see a dc1
// address. Then the drain is deleted, timed as in trial 4.
func (r *scenarioRun) drainAcrossRestart() {
	h := r.h
	id, err := h.drainSite(r.ctx, h.nodes[0], "dc1", "scenario trial 5")
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := h.pollUntil(r.ctx, h.nodes, h.noSite("dc1"), r.stats); err != nil {
		r.t.Fatalf("trial 5, drain %s: %v", id, err)
	}
	rec := h.startRecording(r.ctx, h.nodes, r.stats)
	stopped, err := h.stopNodes(h.nodes)
	if err != nil {
		r.t.Error(err) // a defect of its own; the trial goes on
	}
	r.add(kindRestartStop, 0, stopped)

	t0, err := h.startNodes(h.nodes)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err := rec.waitFor(r.ctx, h.nodes, h.noSite("dc1"), t0)
	r.record(kindRestartServe, 0, t0, t0, "before it was started", got, err)
	// Keep the drain a little longer: until the cluster has formed again
	// and every node has answered once more after that, so that what the
	// peers gossip on joining has had its chance to undo the drain.
	if err := h.waitConverged(r.ctx); err != nil {
		r.t.Fatalf("trial 5, after the restart: %v", err)
	}
	if _, err := rec.waitFor(r.ctx, h.nodes, h.noSite("dc1"), time.Now()); err != nil {
		r.t.Fatalf("trial 5, after the restart: %v", err)
	}

	sent := time.Now()
	err = h.undrain(r.ctx, h.nodes[1], id, "scenario trial 5 done")
	t0 = time.Now()
	if err != nil {
		r.t.Fatal(err)
	}
	got, err = rec.waitFor(r.ctx, h.nodes, h.onlySite("dc1"), sent)
	r.record(kindRestartUndrain, 0, t0, sent, "before the undrain was requested", got, err)
	r.breach(invDrainRestart, h.forbidden(rec.finish(), "dc1", sent))
	h.settle(r.ctx, "trial 5")
}
