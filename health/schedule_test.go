package health

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestGroupHeap checks the scheduler's heap against a sorted list under
// random adds, moves and removals: every entry is due no sooner than its
// parent, so the first is the earliest due, and every group knows its
// place.
func TestGroupHeap(t *testing.T) {
	ctx := context.Background()
	s := newScheduler()
	groups := make([]*group, 200)
	due := map[*group]time.Duration{}
	for i := range groups {
		groups[i] = &group{index: -1, ctx: ctx}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 5000 {
		g := groups[r.IntN(len(groups))]
		if r.IntN(4) == 0 {
			s.remove(g)
			delete(due, g)
		} else {
			d := time.Duration(r.IntN(1000)) * time.Millisecond
			s.add(g, s.epoch.Add(d), 0)
			due[g] = d
		}
		if len(s.heap) != len(due) {
			t.Fatalf("step %d: %d entries, want %d", step, len(s.heap), len(due))
		}
		for i, e := range s.heap {
			if e.g.index != i {
				t.Fatalf("step %d: entry %d's group says index %d", step, i, e.g.index)
			}
			if time.Duration(e.due) != due[e.g] {
				t.Fatalf("step %d: entry %d due %v, want %v", step, i, time.Duration(e.due), due[e.g])
			}
			if p := (i - 1) / heapArity; i > 0 && s.heap[p].due > e.due {
				t.Fatalf("step %d: entry %d due %v before its parent %d, due %v", step, i, time.Duration(e.due), p, time.Duration(s.heap[p].due))
			}
		}
		if len(due) > 0 {
			if got, want := time.Duration(s.heap[0].due), slices.Min(mapValues(due)); got != want {
				t.Fatalf("step %d: first due %v, want %v", step, got, want)
			}
		}
	}
}

func mapValues(m map[*group]time.Duration) []time.Duration {
	var v []time.Duration
	for _, d := range m {
		v = append(v, d)
	}
	return v
}
