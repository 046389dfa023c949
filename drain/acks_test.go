package drain

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestAcksWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAcks("a")
		v1 := stamp(t0, 0, "a")
		v2 := stamp(t0, 1, "a")
		a.Applied("a", []Ack{{ID: "d1", Stamp: v1}})

		type result struct{ applied, missing []string }
		res := make(chan result, 1)
		go func() {
			ap, mi := a.Wait(t.Context(), "d1", v2, []string{"c", "a", "b"})
			res <- result{ap, mi}
		}()
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("Wait returned %v early", r)
		default:
		}
		a.Applied("a", []Ack{{ID: "d1", Stamp: v2}})
		a.Applied("b", []Ack{{ID: "d1", Stamp: stamp(t0, 5, "x")}}) // a later version counts
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("Wait returned %v with c missing", r)
		default:
		}
		a.Applied("c", []Ack{{ID: "d1", Stamp: v2}, {ID: "other", Stamp: v1}})
		synctest.Wait()
		r := <-res
		if !slices.Equal(r.applied, []string{"a", "b", "c"}) || len(r.missing) != 0 {
			t.Errorf("Wait = %v, %v; want all applied", r.applied, r.missing)
		}
	})
}

func TestAcksWaitBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAcks("a")
		v := stamp(t0, 0, "a")
		a.Applied("a", []Ack{{ID: "d1", Stamp: v}})
		a.Applied("b", []Ack{{ID: "d1", Stamp: stamp(t0.Add(-time.Second), 0, "a")}}) // an older version
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		applied, missing := a.Wait(ctx, "d1", v, []string{"a", "b"})
		if time.Since(start) != 2*time.Second {
			t.Errorf("Wait took %v, want the 2s bound", time.Since(start))
		}
		if !slices.Equal(applied, []string{"a"}) || !slices.Equal(missing, []string{"b"}) {
			t.Errorf("Wait = %v, %v; want [a] applied, [b] missing", applied, missing)
		}
	})
}

// TestAcksPublished: a version this node publishes counts as applied by
// it; versions written by others are owed to their writers, once; a drain
// the node no longer holds is forgotten.
func TestAcksPublished(t *testing.T) {
	a := NewAcks("me")
	mine := Record{ID: "d1", Stamp: stamp(t0, 0, "me")}
	theirs := Record{ID: "d2", Stamp: stamp(t0, 0, "other")}
	owed := a.Published([]Record{mine, theirs})
	if want := map[string][]Ack{"other": {{ID: "d2", Stamp: theirs.Stamp}}}; !reflect.DeepEqual(owed, want) {
		t.Errorf("owed = %v, want %v", owed, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range []Record{mine, theirs} {
		if applied, _ := a.Wait(ctx, r.ID, r.Stamp, []string{"me"}); !slices.Equal(applied, []string{"me"}) {
			t.Errorf("%s: applied by %v, want [me]", r.ID, applied)
		}
	}
	if owed := a.Published([]Record{mine, theirs}); owed != nil {
		t.Errorf("publishing the same versions again owes %v, want nothing", owed)
	}
	newer := Record{ID: "d2", Stamp: stamp(t0, 1, "other")}
	if owed := a.Published([]Record{mine, newer}); len(owed["other"]) != 1 || owed["other"][0].Stamp != newer.Stamp {
		t.Errorf("a newer version owes %v, want one ack of %v", owed, newer.Stamp)
	}
	a.Applied("peer", []Ack{{ID: "d1", Stamp: mine.Stamp}})
	a.Published([]Record{newer}) // d1 is no longer held
	if applied, _ := a.Wait(ctx, "d1", mine.Stamp, []string{"me", "peer"}); len(applied) != 0 {
		t.Errorf("forgotten drain still applied by %v", applied)
	}
}
