package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/health"
)

// ages returns the age of every report every node holds from another.
func ages(nodes []*testNode) []time.Duration {
	var out []time.Duration
	for _, n := range nodes {
		now := time.Now()
		for _, r := range n.Reports() {
			out = append(out, now.Sub(r.At))
		}
	}
	return out
}

// ageWatch samples ages every 20ms until stop is closed, and returns the
// samples' median, 99th percentile and maximum.
func ageWatch(nodes []*testNode, d time.Duration) (p50, p99, worst time.Duration) {
	var all []time.Duration
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-end:
			if len(all) == 0 {
				return 0, 0, 0
			}
			slices.Sort(all)
			return all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
		case <-tick.C:
			all = append(all, ages(nodes)...)
		}
	}
}

// TestGossipAtScale runs 20 nodes. Idle, each sends a bounded number of
// packets per Heartbeat, whatever the size of the cluster: memberlist's
// gossip rounds (two per Heartbeat, to three peers) carrying the
// heartbeat digests, and its probes. Before, each node also sent its
// report to each of the 19 others every Heartbeat (about 26 packets per
// Heartbeat in all, growing with the cluster). It logs how old the
// reports held grow meanwhile. Then a node is killed:
// although every node relays the heartbeats it hears, the dead node's
// report goes stale on every other, and none holds it as heard from
// after the kill.
//
// Not parallel: it measures, and runs before the package's parallel
// tests start.
func TestGossipAtScale(t *testing.T) {
	const n = 20
	nodes, counts := bigCluster(t, n, nil)
	hb := nodes[0].cfg.Heartbeat

	before := make([]sent, n)
	for i, c := range counts {
		before[i] = c.sent()
	}
	start := time.Now()
	p50, p99, worst := ageWatch(nodes, 10*hb)
	beats := float64(time.Since(start)) / float64(hb)
	t.Logf("age of the reports held (every node, every origin, every 20ms): median %v, p99 %v, max %v (staleness %v)",
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), nodes[0].cfg.Staleness)
	// Two gossip rounds per Heartbeat to gossipNodes peers each, and
	// twice that again for probes, acknowledgements and the odd repair.
	bound := 2 * 2 * gossipNodes
	most, total := 0.0, 0.0
	for i, c := range counts {
		per := float64(c.sent().packets-before[i].packets) / beats
		total += per
		most = max(most, per)
		if per > float64(bound) {
			t.Errorf("%s sent %.1f packets per heartbeat, want at most %d whatever the cluster size", nodes[i].cfg.Name, per, bound)
		}
	}
	t.Logf("%d nodes idle: %.1f packets per node per heartbeat on average, %.1f at most (bound %d)", n, total/n, most, bound)
	if err := whole(nodes); err != nil {
		// memberlist's own failure detector (probe timeout 250ms) may
		// suspect a node that the race detector and a loaded machine
		// starve; what is measured here is the gossip's cost.
		t.Logf("after the idle period: %v", err)
	}

	dead := nodes[n-1]
	dead.kill(t)
	killed := time.Now()
	rest := nodes[:n-1]
	took := waitFor(t, dead.cfg.Staleness+5*time.Second, "the dead node's report stale on every other", func() error {
		for _, nd := range rest {
			if r, ok := nd.report(dead.cfg.Name); ok && time.Since(r.At) < nd.cfg.Staleness {
				return fmt.Errorf("%s holds %s's report %v old", nd.cfg.Name, dead.cfg.Name, time.Since(r.At))
			}
		}
		return nil
	})
	t.Logf("the dead node's report stale everywhere %v after the kill", took)
	for _, nd := range rest {
		// A packet in a socket buffer at the kill may still be read a
		// little later (on a loaded machine, later still); relays
		// refreshing the report would keep it going for as long as they
		// relay.
		if r, ok := nd.report(dead.cfg.Name); ok && r.At.After(killed.Add(dead.cfg.Staleness/2)) {
			t.Errorf("%s holds %s as heard from %v after it was killed: relays kept it alive", nd.cfg.Name, dead.cfg.Name, r.At.Sub(killed))
		}
	}
}

// TestMissedReportFetched: a's packets to c are lost. a announces a new
// report; c learns of its Seq from the heartbeats b relays and fetches it
// from b. Before, c had to wait for a push/pull (every 10s).
func TestMissedReportFetched(t *testing.T) {
	t.Parallel()
	l := newLinks()
	nodes := startThree(t, l.wrap)
	a, b, c := nodes[0], nodes[1], nodes[2]
	l.mu.Lock()
	l.cut[[2]string{a.Addr().String(), c.Addr().String()}] = true
	l.mu.Unlock()
	a.Announce(health.Report{Ready: true, Targets: targetsOf("a", health.Down)})
	took := waitFor(t, 3*time.Second, "c holds a's new report", func() error {
		return errors.Join(b.hasTargets("a", targetsOf("a", health.Down)), c.hasTargets("a", targetsOf("a", health.Down)))
	})
	t.Logf("c fetched a's report %v after the announce", took)
	if got := testutil.ToFloat64(c.metrics.requested); got < 1 {
		t.Errorf("c asked for %v reports, want at least 1", got)
	}
	// And b's relays keep a fresh on c, though a cannot reach c.
	waitFor(t, 3*time.Second, "a's report fresh on c", func() error {
		if r, ok := c.report("a"); !ok || time.Since(r.At) >= c.cfg.Staleness {
			return errors.New("a's report stale on c")
		}
		return nil
	})
}

// olderNode is a memberlist member that speaks gossip as a node of the
// version before heartbeat digests did: node meta of version 1, and it
// counts the reports it receives per origin.
type olderNode struct {
	meta []byte
	// mu guards reports.
	mu      sync.Mutex
	reports map[string]int
}

func (o *olderNode) NodeMeta(int) []byte { return o.meta }
func (o *olderNode) NotifyMsg(b []byte) {
	k, body, err := splitKind(b)
	if err != nil || k != kindReport {
		return // an earlier version drops what it does not know
	}
	if m, err := decodeReport(body); err == nil {
		o.mu.Lock()
		o.reports[m.report.Origin]++
		o.mu.Unlock()
	}
}
func (o *olderNode) GetBroadcasts(int, int) [][]byte { return nil }
func (o *olderNode) LocalState(bool) []byte          { return nil }
func (o *olderNode) MergeRemoteState([]byte, bool)   {}

// TestEarlierVersionPeerKeptFresh: a node of an earlier version (without
// the beats feature in its node meta) cannot read heartbeat digests, so
// during a rolling upgrade every node still sends it the full report
// every Heartbeat.
func TestEarlierVersionPeerKeptFresh(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, nil)
	meta := []byte{1}
	for _, f := range []string{"site-old", "h1"} {
		meta = binary.AppendUvarint(meta, uint64(len(f)))
		meta = append(meta, f...)
	}
	old := &olderNode{meta: meta, reports: map[string]int{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.Label = "old", "127.0.0.1", 0, clusterLabel
	mc.Delegate = old
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join(nodes[0].seed()); err != nil {
		t.Fatal(err)
	}
	const want = 10 // two seconds' worth of heartbeats
	took := waitFor(t, 10*time.Second, "the older node gets every report every heartbeat", func() error {
		old.mu.Lock()
		defer old.mu.Unlock()
		for _, n := range nodes {
			if got := old.reports[n.cfg.Name]; got < want {
				return fmt.Errorf("%d reports from %s, want %d", got, n.cfg.Name, want)
			}
		}
		return nil
	})
	t.Logf("%d reports from each node in %v", want, took)
}
