package health

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestGroupHeap checks the scheduler against a list of what is queued,
// under random adds, expedites and removals: every entry is due no sooner
// than its parent, each queued group has exactly one entry of its own
// (the others are stale), due when it was last scheduled, and groups come
// out of it in due order, each once, never one that was removed.
func TestGroupHeap(t *testing.T) {
	ctx := context.Background()
	s := newScheduler()
	groups := make([]*group, 200)
	due := map[*group]int64{}
	for i := range groups {
		groups[i] = &group{ctx: ctx, run: ctx}
	}
	r := rand.New(rand.NewPCG(1, 2))
	check := func(step int) {
		t.Helper()
		live := map[*group]int{}
		for i, e := range s.heap {
			if p := (i - 1) / heapArity; i > 0 && s.heap[p].due > e.due {
				t.Fatalf("step %d: entry %d due %v before its parent %d, due %v", step, i, time.Duration(e.due), p, time.Duration(s.heap[p].due))
			}
			if e.g.queued && e.seq == e.g.seq {
				live[e.g]++
				if e.due != due[e.g] {
					t.Fatalf("step %d: entry %d due %v, want %v", step, i, time.Duration(e.due), time.Duration(due[e.g]))
				}
			}
		}
		for g := range due {
			if live[g] != 1 {
				t.Fatalf("step %d: a queued group has %d entries of its own, want 1", step, live[g])
			}
		}
		if len(live) != len(due) {
			t.Fatalf("step %d: %d groups have an entry, want %d", step, len(live), len(due))
		}
	}
	for step := range 5000 {
		g := groups[r.IntN(len(groups))]
		now := time.Duration(step) * time.Millisecond
		switch r.IntN(8) {
		case 0, 1:
			s.remove(g)
			delete(due, g)
		case 2:
			// Expedite moves only a queued group that is not due yet,
			// and at most once per gap.
			gap := 50 * time.Millisecond
			want := g.queued && g.due > int64(now) && (g.expedited == 0 || int64(now)-g.expedited >= int64(gap))
			if got := s.expedite(g, s.epoch.Add(now), gap); got != want {
				t.Fatalf("step %d: expedite reported %v, want %v", step, got, want)
			}
			if want {
				due[g] = int64(now)
			}
		default:
			d := now + time.Duration(r.IntN(1000))*time.Millisecond
			s.add(g, s.epoch.Add(d), 0)
			due[g] = int64(d)
		}
		check(step)
		if step%100 == 99 {
			// The groups due by now come out in due order, each once.
			s.mu.Lock()
			var got []int64
			for g := s.popLocked(int64(now)); g != nil; g = s.popLocked(int64(now)) {
				d, ok := due[g]
				if !ok {
					s.mu.Unlock()
					t.Fatalf("step %d: a group that is not queued came out", step)
				}
				got = append(got, d)
				delete(due, g)
			}
			s.mu.Unlock()
			if !slices.IsSorted(got) {
				t.Fatalf("step %d: groups came out in the order %v", step, got)
			}
			for _, d := range due {
				if d <= int64(now) {
					t.Fatalf("step %d: a group due at %v stayed in at %v", step, time.Duration(d), now)
				}
			}
			check(step)
		}
	}
	// Once every group is out, no entry is left: the stale ones went
	// with them.
	s.mu.Lock()
	for s.popLocked(1<<62) != nil {
	}
	n := len(s.heap)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d entries left in an empty scheduler", n)
	}
}

// TestSchedulerStaleEntries checks that a group moved again and again
// while it waits comes out once, at the last time it was given, and
// leaves no entry behind.
func TestSchedulerStaleEntries(t *testing.T) {
	s := newScheduler()
	g := &group{ctx: context.Background(), run: context.Background()}
	last := int64(0)
	for i := range 1000 {
		last = int64(time.Second) - int64(i)*int64(time.Microsecond)
		s.add(g, s.epoch.Add(time.Duration(last)), 0)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.popLocked(last - 1); got != nil {
		t.Fatalf("the group came out before its last due time")
	}
	if got := s.popLocked(last); got != g {
		t.Fatalf("the group did not come out at its last due time")
	}
	if got := s.popLocked(int64(2 * time.Second)); got != nil {
		t.Fatalf("the group came out twice")
	}
	if len(s.heap) != 0 {
		t.Fatalf("%d entries left behind", len(s.heap))
	}
}

// TestGroupStopped checks that a group's stopped, which the scheduler and
// the loop ask of every probe, says what its context says: false while it
// is probed, true once it is removed, and true for every group once the
// Checker stops.
func TestGroupStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pa, pb flip
		r := start(t, CheckerConfig{}, target("a", pa.probe), target("b", pb.probe))
		advance(time.Second)
		groupOf := func(id string) *group {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, g := range r.groups {
				if g.cfg.Load().members[0].id == id {
					return g
				}
			}
			t.Fatalf("no group for %s", id)
			return nil
		}
		a, b := groupOf("a"), groupOf("b")
		for _, g := range []*group{a, b} {
			if g.stopped() || g.ctx.Err() != nil {
				t.Fatalf("a running group: stopped %v, context %v", g.stopped(), g.ctx.Err())
			}
		}
		r.Update([]Target{target("a", pa.probe)})
		if !b.stopped() || b.ctx.Err() == nil {
			t.Errorf("a removed group: stopped %v, context %v", b.stopped(), b.ctx.Err())
		}
		if a.stopped() {
			t.Error("a kept group says it stopped")
		}
		r.stop(t)
		if !a.stopped() || a.ctx.Err() == nil {
			t.Errorf("a group of a stopped Checker: stopped %v, context %v", a.stopped(), a.ctx.Err())
		}
	})
}
