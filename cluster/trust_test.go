package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
)

// The attacks of issue 8 on gossip, each against a real memberlist
// cluster on 127.0.0.1: a stranger without the key, and a member that
// forges reports and leaves in another node's name.

var (
	key1 = []byte("0123456789abcdef")
	key2 = []byte("fedcba9876543210fedcba9876543210")
)

func rejected(n *testNode, kind, reason string) float64 {
	return testutil.ToFloat64(n.metrics.rejected.WithLabelValues(kind, reason))
}

// forgedDrain is a drain of site dc1 that names a writer and an author
// it invented, as in the issue.
func forgedDrain(t *testing.T) drain.Record {
	t.Helper()
	s, err := drain.Open(drain.StoreConfig{Node: "a"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Create(drain.Spec{Key: drain.Key{Site: "dc1"}, Reason: "forged"}, "ops-oncall", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStrangerWithoutKeyChangesNothing: a cluster with a key; strangers
// without it (one in clear text, one with another key, one writing raw
// UDP) send a drain, a report and a leave in a member's name, over UDP
// and TCP, and try to join. Nothing changes on any node, and every
// attempt is counted.
func TestStrangerWithoutKeyChangesNothing(t *testing.T) {
	t.Parallel()
	nodes, tables := startThreeWithDrains(t, [][]byte{key1})
	a, b := nodes[0], nodes[1]
	down := targetsOf("a", health.Down)
	frames := [][]byte{
		encodeDrains("a", []drain.Record{forgedDrain(t)}),
		encodeReport(health.Report{Origin: "a", Site: "site-a", Seq: math.MaxUint64 / 2, Time: time.Now(), ConfigHash: "h1", Targets: down}, 0, 0),
		encodeLeave("a", math.MaxUint64/2),
	}
	clear := startNode(t, Config{Name: "mallory", Seeds: a.seed(), RetryInterval: 20 * time.Millisecond})
	wrongKey := startNode(t, Config{Name: "eve", Keys: [][]byte{key2}, Seeds: a.seed(), RetryInterval: 20 * time.Millisecond})
	bAddr := b.Addr()
	target := &memberlist.Node{Name: "b", Addr: bAddr.Addr().AsSlice(), Port: bAddr.Port()}
	sends := 0
	for _, s := range []*testNode{clear, wrongKey} {
		for _, f := range frames {
			if err := s.ml.SendBestEffort(target, f); err != nil {
				t.Fatal(err)
			}
			if err := s.ml.SendReliable(target, f); err != nil {
				t.Logf("%s: reliable send refused: %v", s.cfg.Name, err)
			}
			sends += 2
		}
	}
	raw, err := net.Dial("udp", bAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, f := range frames {
		if _, err := raw.Write(f); err != nil {
			t.Fatal(err)
		}
		sends++
	}
	waitFor(t, 10*time.Second, "every stranger's message counted on b, and their joins on a", func() error {
		if got := rejected(b, rejGossip, reasonUnauthenticated); got < float64(sends) {
			return fmt.Errorf("b counted %v unauthenticated, want at least %d", got, sends)
		}
		if got := rejected(a, rejGossip, reasonUnauthenticated); got < 2 {
			return fmt.Errorf("a counted %v unauthenticated joins, want at least 2", got)
		}
		return nil
	})
	for _, n := range nodes {
		if recs := tables[n.cfg.Name].store.Records(); len(recs) != 0 {
			t.Errorf("%s holds drains %+v, want none", n.cfg.Name, recs)
		}
		if err := n.allAlive("a", "b", "c"); err != nil {
			t.Error(err)
		}
		for _, o := range nodes {
			if o != n {
				if err := n.hasTargets(o.cfg.Name, targetsOf(o.cfg.Name, health.Up)); err != nil {
					t.Error(err)
				}
			}
		}
	}
	for _, s := range []*testNode{clear, wrongKey} {
		if err := s.allAlive(s.cfg.Name); err != nil {
			t.Errorf("the stranger joined: %v", err)
		}
	}
}

// TestForgedReportMaxSeqRefused: a member sends a report in another's
// name with Seq 2^64-1. It is refused and counted, and the origin's own
// reports keep coming through.
func TestForgedReportMaxSeqRefused(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, func(c *Config) { c.Keys = [][]byte{key1} })
	a, b, c := nodes[0], nodes[1], nodes[2]
	forged := encodeReport(health.Report{Origin: "a", Site: "site-a", Seq: math.MaxUint64, Time: time.Now(), ConfigHash: "h1",
		Targets: targetsOf("a", health.Down)}, 0, 0)
	if err := b.ml.SendReliable(b.peer(t, "c"), forged); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "c refuses the forged report", func() error {
		if rejected(c, rejReport, reasonSeqAhead) < 1 {
			return errors.New("not counted yet")
		}
		return nil
	})
	if err := c.hasTargets("a", targetsOf("a", health.Up)); err != nil {
		t.Errorf("after the forged report: %v", err)
	}
	// a's own next report still counts on c.
	a.Announce(health.Report{Ready: true, Targets: targetsOf("a", health.Down)})
	waitFor(t, 5*time.Second, "a's real report reaches c", func() error { return c.hasTargets("a", targetsOf("a", health.Down)) })
}

// TestForgedReportHidesForAtMostStaleness: a forged report with a
// plausible but higher Seq is taken (a member's word), but hides the
// origin's own reports only until it goes stale: the origin's next
// report after that is held again.
func TestForgedReportHidesForAtMostStaleness(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, func(c *Config) { c.Keys = [][]byte{key1} })
	b, c := nodes[1], nodes[2]
	held, _ := c.report("a")
	forged := encodeReport(health.Report{Origin: "a", Site: "site-a", Seq: uint64(time.Now().UnixNano()), Time: time.Now(), ConfigHash: "h1",
		Targets: targetsOf("a", health.Down)}, 0, 0)
	if err := b.ml.SendReliable(b.peer(t, "c"), forged); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "c takes the forged report", func() error { return c.hasTargets("a", targetsOf("a", health.Down)) })
	took := waitFor(t, 5*time.Second, "a's own report is back on c", func() error {
		r, _ := c.report("a")
		if r.Seq != held.Seq {
			return fmt.Errorf("c holds a's seq %d, want a's own %d", r.Seq, held.Seq)
		}
		return c.hasTargets("a", targetsOf("a", health.Up))
	})
	t.Logf("a's own report was back %v after the forged one was taken (staleness %v)", took, c.cfg.Staleness)
}

// TestForgedLeaveUndone: a member sends a leave in a live node's name.
// The node does not stay left: its next report (or memberlist, which
// still lists it) undoes the leave, and its report is held again.
func TestForgedLeaveUndone(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, func(c *Config) { c.Keys = [][]byte{key1} })
	b, c := nodes[1], nodes[2]
	held, _ := c.report("a")
	if err := b.ml.SendReliable(b.peer(t, "c"), encodeLeave("a", held.Seq)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "c applies the leave", func() error {
		if _, ok := c.report("a"); ok {
			return errors.New("a's report still held")
		}
		return nil
	})
	took := waitFor(t, 5*time.Second, "c sees a alive with its report again", func() error {
		if m, _ := c.member("a"); m.State != MemberAlive {
			return fmt.Errorf("c shows a as %s", m.State)
		}
		return c.hasTargets("a", targetsOf("a", health.Up))
	})
	t.Logf("the forged leave held for %v", took)
	if got := rejected(c, rejLeave, reasonContradicted) + rejected(c, rejLeave, reasonUnconfirmed); got < 1 {
		t.Errorf("undone leaves counted %v, want 1", got)
	}
	// Still there after memberlist's gossip-to-the-dead time would have
	// counted, as far as c's own bookkeeping goes: the member is alive.
	c.expire(time.Now().Add(gossipToTheDeadTime + time.Second))
	if _, ok := c.member("a"); !ok {
		t.Error("c forgot a, which is alive")
	}
}

// TestDrainFromUnknownSenderRefused: drains must come from a name that
// memberlist lists as alive.
func TestDrainFromUnknownSenderRefused(t *testing.T) {
	t.Parallel()
	nodes, tables := startThreeWithDrains(t, [][]byte{key1})
	b, c := nodes[1], nodes[2]
	if err := b.ml.SendReliable(b.peer(t, "c"), encodeDrains("nobody", []drain.Record{forgedDrain(t)})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "c refuses the drain", func() error {
		if rejected(c, rejDrains, reasonUnknownSender) < 1 {
			return errors.New("not counted yet")
		}
		return nil
	})
	if recs := tables["c"].store.Records(); len(recs) != 0 {
		t.Errorf("c holds %+v, want nothing", recs)
	}
}

// TestKeyRotationKeepsClusterWhole rotates the key of a running
// three-node cluster, one node at a time: install the new key, switch
// to it, remove the old. After every single change every node still
// hears every other's new report. Afterwards a node with only the old
// key cannot join.
func TestKeyRotationKeepsClusterWhole(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, func(c *Config) { c.Keys = [][]byte{key1} })
	round := 0
	whole := func(what string) {
		t.Helper()
		round++
		state := health.State(health.Up)
		if round%2 == 1 {
			state = health.Down
		}
		for _, n := range nodes {
			n.Announce(health.Report{Ready: true, Targets: targetsOf(n.cfg.Name, state)})
		}
		waitFor(t, 5*time.Second, what+": every node hears every other", func() error {
			for _, n := range nodes {
				if err := n.allAlive("a", "b", "c"); err != nil {
					return err
				}
				for _, o := range nodes {
					if o != n {
						if err := n.hasTargets(o.cfg.Name, targetsOf(o.cfg.Name, state)); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
	}
	steps := []struct {
		name string
		keys [][]byte
	}{
		{"install the new key", [][]byte{key1, key2}},
		{"switch to it", [][]byte{key2, key1}},
		{"remove the old", [][]byte{key2}},
	}
	for _, st := range steps {
		for _, n := range nodes {
			if err := n.SetKeys(st.keys); err != nil {
				t.Fatalf("%s on %s: %v", st.name, n.cfg.Name, err)
			}
			want := make([]string, len(st.keys))
			for i, k := range st.keys {
				want[i] = KeyID(k)
			}
			if got := n.KeyIDs(); !slices.Equal(got, want) {
				t.Fatalf("%s on %s: keyring %v, want %v", st.name, n.cfg.Name, got, want)
			}
			whole(st.name + " on " + n.cfg.Name)
		}
	}
	old := startNode(t, Config{Name: "old", Keys: [][]byte{key1}, Seeds: nodes[0].seed(), RetryInterval: 20 * time.Millisecond})
	waitFor(t, 5*time.Second, "a node with the old key fails to join", func() error {
		if n := testutil.ToFloat64(old.metrics.joins.WithLabelValues(joinFailure)); n < 2 {
			return errors.New("fewer than two failed joins yet")
		}
		return nil
	})
	if err := old.allAlive("old"); err != nil {
		t.Error(err)
	}
}

// TestSetKeys covers the keyring changes without a network, the order
// that keeps removals from shifting keys in place included.
func TestSetKeys(t *testing.T) {
	k := func(b byte) []byte { return []byte(string(rune('a'+b)) + "123456789abcdef") }
	c := newBare(t)
	var err error
	if c.keyring, err = memberlist.NewKeyring(nil, k(0)); err != nil {
		t.Fatal(err)
	}
	ids := func(keys ...[]byte) []string {
		var out []string
		for _, key := range keys {
			out = append(out, KeyID(key))
		}
		return out
	}
	steps := [][][]byte{
		{k(0), k(1), k(2)},
		{k(1), k(0), k(2)},
		{k(2), k(1)},       // the old primary is not at the end
		{k(2), k(3), k(1)}, // a new key between
		{k(3)},
	}
	for _, keys := range steps {
		if err := c.SetKeys(keys); err != nil {
			t.Fatalf("SetKeys(%v) = %v", ids(keys...), err)
		}
		got := c.KeyIDs()
		if got[0] != KeyID(keys[0]) || len(got) != len(keys) {
			t.Fatalf("after SetKeys(%v) the ring is %v", ids(keys...), got)
		}
		slices.Sort(got)
		want := ids(keys...)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("after SetKeys(%v) the ring holds %v", ids(keys...), got)
		}
	}
	for _, bad := range [][][]byte{nil, {[]byte("short")}} {
		if err := c.SetKeys(bad); err == nil {
			t.Errorf("SetKeys(%q) = nil, want an error", bad)
		}
	}
	c.keyring = nil
	if err := c.SetKeys([][]byte{k(0)}); err == nil {
		t.Error("SetKeys on a node without encryption = nil, want an error (a restart is needed)")
	}
}
