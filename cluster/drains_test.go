package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/drain"
)

// drainTable is a Drains over a real drain.Store and drain.Acks, as cmd
// wires them.
type drainTable struct {
	store *drain.Store
	acks  *drain.Acks
}

func newDrainTable(t testing.TB, node string) *drainTable {
	t.Helper()
	s, err := drain.Open(drain.StoreConfig{Node: node}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &drainTable{store: s, acks: drain.NewAcks(node)}
}

// startThreeWithDrains starts three nodes, each gossiping a drain table
// of its own, with the gossip keyring keys (nil: no encryption).
func startThreeWithDrains(t *testing.T, keys [][]byte) ([]*testNode, map[string]*drainTable) {
	t.Helper()
	tables := map[string]*drainTable{}
	nodes := startThree(t, func(c *Config) {
		c.Keys = keys
		tables[c.Name] = newDrainTable(t, c.Name)
		tables[c.Name].wire(c)
	})
	return nodes, tables
}

// wire makes c gossip the table's records and report acknowledgements to it.
func (d *drainTable) wire(c *Config) { c.Drains, c.DrainAcks = d.store, d.acks }

// holds reports whether the table holds exactly rec's version.
func (d *drainTable) holds(rec drain.Record) error {
	got, ok := d.store.Get(rec.ID)
	if !ok || got.Stamp != rec.Stamp || got.Deleted != rec.Deleted {
		return fmt.Errorf("holds %+v, want %+v", got, rec)
	}
	return nil
}

func TestDrainsPropagate(t *testing.T) {
	t.Parallel()
	nodes, tables := startThreeWithDrains(t, nil)
	a, b := nodes[0], nodes[1]
	rec, err := tables["a"].store.Create(drain.Spec{Key: drain.Key{Site: "dc1"}, Reason: "fire alarm"}, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a.BroadcastDrains([]drain.Record{rec})
	took := waitFor(t, 5*time.Second, "the drain reaches b and c", func() error {
		return errors.Join(tables["b"].holds(rec), tables["c"].holds(rec))
	})
	t.Logf("drain reached every peer in %v", took)

	// b deletes it; the tombstone reaches a and c.
	tomb, err := tables["b"].store.Delete(rec.ID, "ops", "all clear", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.BroadcastDrains([]drain.Record{tomb})
	waitFor(t, 5*time.Second, "the delete reaches a and c", func() error {
		return errors.Join(tables["a"].holds(tomb), tables["c"].holds(tomb))
	})

	// c acknowledges to b, the writer of the tombstone.
	nodes[2].AckDrains("b", []drain.Ack{{ID: tomb.ID, Stamp: tomb.Stamp}})
	waitFor(t, 5*time.Second, "c's acknowledgement reaches b", func() error {
		ctx, cancel := contextDone()
		defer cancel()
		if _, missing := tables["b"].acks.Wait(ctx, tomb.ID, tomb.Stamp, []string{"c"}); len(missing) > 0 {
			return errors.New("not acknowledged")
		}
		return nil
	})
}

func TestLateJoinerGetsDrainsByPushPull(t *testing.T) {
	t.Parallel()
	ta, tb := newDrainTable(t, "a"), newDrainTable(t, "b")
	// a holds a drain it never broadcast (made before anyone joined).
	rec, err := ta.store.Create(drain.Spec{Key: drain.Key{Site: "dc2", Service: "talk.example.com"}, Reason: "power feed"}, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := Config{Name: "a"}, Config{Name: "b"}
	ta.wire(&ca)
	tb.wire(&cb)
	a := startNode(t, ca)
	cb.Seeds = a.seed()
	startNode(t, cb)
	waitFor(t, 5*time.Second, "b gets a's drain on join", func() error { return tb.holds(rec) })
}

func TestDrainFramesThroughState(t *testing.T) {
	src := newBare(t)
	st := newDrainTable(t, "self")
	st.wire(&src.cfg)
	rec, err := st.store.Create(drain.Spec{Key: drain.Key{Site: "dc1"}, Reason: "x"}, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dst := newBare(t)
	dst.cfg.Name = "other"
	dt := newDrainTable(t, "other")
	dt.wire(&dst.cfg)
	// Drains count only from members memberlist lists as alive.
	dst.members["self"] = &member{state: MemberAlive}
	dst.members["x"] = &member{state: MemberAlive}
	dst.mergeState(src.localState(time.Now()))
	if err := dt.holds(rec); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(dst.metrics.bad); n != 0 {
		t.Errorf("bad messages = %v, want 0", n)
	}

	// A record whose ID does not match its scope is refused and counted
	// (as a rejected record: the frame itself decoded).
	bad := rec
	bad.ID = "000000000000"
	dst.receive(encodeDrains("x", []drain.Record{bad}))
	if n := testutil.ToFloat64(dst.metrics.rejected.WithLabelValues(rejDrains, reasonInvalid)); n != 1 {
		t.Errorf("rejected invalid drain records = %v, want 1", n)
	}
	for _, frame := range [][]byte{
		append([]byte{byte(kindDrains)}, `{"records":[]}`...),
		append([]byte{byte(kindDrainAck)}, `{`...),
	} {
		dst.receive(frame)
	}
	if n := testutil.ToFloat64(dst.metrics.bad); n != 2 {
		t.Errorf("bad messages after two malformed frames = %v, want 2", n)
	}

	// An acknowledgement reaches the table.
	dst.receive(encodeDrainAck("x", []drain.Ack{{ID: rec.ID, Stamp: rec.Stamp}}))
	ctx, cancel := contextDone()
	defer cancel()
	if applied, _ := dt.acks.Wait(ctx, rec.ID, rec.Stamp, []string{"x"}); !slices.Equal(applied, []string{"x"}) {
		t.Errorf("acknowledged by %v, want [x]", applied)
	}
}

// contextDone returns a context that is already cancelled: Wait then
// reports the current state without blocking.
func contextDone() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx, cancel
}

// TestConcurrentDrainWritesConverge: a and b create the same drain at the
// same time, each without having seen the other's write, with different
// reasons. Every node ends with the same record, the one with the higher
// stamp; a delete made on c after that wins everywhere.
func TestConcurrentDrainWritesConverge(t *testing.T) {
	t.Parallel()
	nodes, tables := startThreeWithDrains(t, nil)
	spec := func(reason string) drain.Spec { return drain.Spec{Key: drain.Key{Site: "dc1"}, Reason: reason} }
	now := time.Now()
	ra, err := tables["a"].store.Create(spec("from a"), "ops", now)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := tables["b"].store.Create(spec("from b"), "ops", now)
	if err != nil {
		t.Fatal(err)
	}
	nodes[0].BroadcastDrains([]drain.Record{ra})
	nodes[1].BroadcastDrains([]drain.Record{rb})
	want := ra
	if rb.Wins(ra) {
		want = rb
	}
	waitFor(t, 5*time.Second, "every node holds the winning create", func() error {
		return errors.Join(tables["a"].holds(want), tables["b"].holds(want), tables["c"].holds(want))
	})
	tomb, err := tables["c"].store.Delete(want.ID, "ops", "done", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nodes[2].BroadcastDrains([]drain.Record{tomb})
	waitFor(t, 5*time.Second, "every node holds the tombstone", func() error {
		return errors.Join(tables["a"].holds(tomb), tables["b"].holds(tomb), tables["c"].holds(tomb))
	})
}
