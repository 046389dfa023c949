package health

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestSchedulerWheel checks the scheduler against a list of what is
// queued, under random adds (some beyond the wheel's span), expedites and
// removals, taking what may start at random times: a group comes out only
// once its start has come, once, never one that was removed, and every
// group whose start has come does; the scheduler never means to wake up
// after a queued group is due; and once every group is out, no entry is
// left, stale ones included.
func TestSchedulerWheel(t *testing.T) {
	ctx := context.Background()
	s := newScheduler()
	groups := make([]*group, 300)
	type queued struct{ due, slack int64 }
	want := map[*group]queued{}
	for i := range groups {
		groups[i] = &group{ctx: ctx, run: ctx}
	}
	r := rand.New(rand.NewPCG(1, 2))
	now := int64(0)
	take := func(step int) {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		seen := map[*group]bool{}
		s.takeLocked(now, func(g *group) {
			q, ok := want[g]
			switch {
			case !ok:
				t.Fatalf("step %d: a group that is not queued came out", step)
			case seen[g]:
				t.Fatalf("step %d: a group came out twice", step)
			case q.due-q.slack > now:
				t.Fatalf("step %d: a group that may start at %v came out at %v", step, time.Duration(q.due-q.slack), time.Duration(now))
			}
			seen[g] = true
			delete(want, g)
		})
		for _, q := range want {
			if q.due-q.slack <= now {
				t.Fatalf("step %d: a group that may start at %v stayed in at %v", step, time.Duration(q.due-q.slack), time.Duration(now))
			}
		}
		// run wakes up at next: never after a queued group is due.
		next, ok := s.w.next()
		for _, q := range want {
			if !ok || next > q.due {
				t.Fatalf("step %d: the scheduler would wake up at %v (%v), after a group due at %v", step, time.Duration(next), ok, time.Duration(q.due))
			}
		}
	}
	for step := range 20000 {
		g := groups[r.IntN(len(groups))]
		switch r.IntN(10) {
		case 0, 1:
			s.remove(g)
			delete(want, g)
		case 2:
			// Expedite moves only a queued group that is not due yet,
			// and at most once per gap.
			gap := 50 * time.Millisecond
			ok := g.queued && g.due > now && (g.expedited == 0 || now-g.expedited >= int64(gap))
			if got := s.expedite(g, s.epoch.Add(time.Duration(now)), gap); got != ok {
				t.Fatalf("step %d: expedite reported %v, want %v", step, got, ok)
			}
			if ok {
				want[g] = queued{due: now}
			}
		case 3:
			now += r.Int64N(int64(30 * time.Millisecond))
			if r.IntN(200) == 0 {
				now += r.Int64N(int64(10 * time.Second)) // a stall
			}
			take(step)
		default:
			// Mostly within the wheel's span, sometimes beyond it, now
			// and then in the past (a probe that ended late).
			d := now - int64(5*time.Millisecond) + r.Int64N(int64(time.Second))
			if r.IntN(10) == 0 {
				d += r.Int64N(int64(20 * time.Second))
			}
			slack := r.Int64N(int64(maxSlack) + 1)
			s.add(g, s.epoch.Add(time.Duration(d)), time.Duration(slack))
			want[g] = queued{due: d, slack: slack}
		}
	}
	now = 1 << 62
	take(-1)
	s.mu.Lock()
	n := s.w.n
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
	var out []int64
	for _, now := range []int64{last - 1, last, int64(2 * time.Second)} {
		s.takeLocked(now, func(*group) { out = append(out, now) })
	}
	if !slices.Equal(out, []int64{last}) {
		t.Fatalf("the group came out at %v, want once at %v", out, last)
	}
	if s.w.n != 0 {
		t.Fatalf("%d entries left behind", s.w.n)
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

// TestSpreadStaysWithinJitter checks the promise batching rests on: a
// probe scheduled d after start may begin anywhere from due-slack to due,
// and that whole window lies within d ± 10%, so starting a probe early to
// join a batch never takes it outside its jitter; the slack is a tenth of
// d up to maxSlack; and the starts cover the window, early and late end.
func TestSpreadStaysWithinJitter(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	for _, d := range []time.Duration{1, 9, 10, 11, time.Microsecond, time.Millisecond,
		100 * time.Millisecond, 500 * time.Millisecond, time.Second, 30 * time.Second, time.Hour} {
		lo, hi := start.Add(d-d/10), start.Add(d+d/10)
		earliest, latest := hi, lo
		for range 2000 {
			due, slack := spread(start, d)
			if want := min(maxSlack, d/10); slack != want {
				t.Fatalf("d=%v: slack %v, want %v", d, slack, want)
			}
			first := due.Add(-slack)
			if first.Before(lo) || due.After(hi) {
				t.Fatalf("d=%v: may start from %v to %v after start, outside %v to %v",
					d, first.Sub(start), due.Sub(start), lo.Sub(start), hi.Sub(start))
			}
			if first.Before(earliest) {
				earliest = first
			}
			if due.After(latest) {
				latest = due
			}
		}
		// Over 2,000 draws the window reaches within 1% of d of both ends.
		if earliest.Sub(lo) > d/100 || hi.Sub(latest) > d/100 {
			t.Fatalf("d=%v: starts span %v to %v after start, want %v to %v",
				d, earliest.Sub(start), latest.Sub(start), lo.Sub(start), hi.Sub(start))
		}
	}
}
