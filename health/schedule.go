package health

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// maxSlack is how early a probe may start so that it shares a wake-up of
// the scheduler with others: probes due within maxSlack of the first one
// start with it. At 20,000 probes a second it turns 20,000 wake-ups (and
// as many bursts of work for the network stack and the endpoints) into at
// most 50, and it costs no precision: a probe's slack is at most a
// twentieth of its delay, and its due time is drawn from the upper part
// of the ±10% jitter so that its start stays within it (see spread).
const maxSlack = 20 * time.Millisecond

// spread returns when a probe d after start is due and how early it may
// start: it starts between due-slack and due, which is uniformly spread
// over d ± 10% except that the slack is taken off the low end.
func spread(start time.Time, d time.Duration) (due time.Time, slack time.Duration) {
	slack = min(maxSlack, d/20)
	return start.Add(d - d/10 + slack + rand.N(d/5-slack+1)), slack
}

// scheduler holds the groups waiting for their next probe, in a heap
// ordered by when each is due, and starts their probes as they fall due.
// A group is in the heap only between probes, so it never has two in
// flight; a probe puts its group back when it is done (add).
//
// The scheduler wakes up when the first group is due, and then starts
// every group that may start (due within its slack), so that probes due
// close together start in one batch.
type scheduler struct {
	// wake is signalled when a group became the first due.
	wake chan struct{}
	// epoch is what due times in the heap count from.
	epoch time.Time

	// mu guards the heap and the groups' index.
	mu   sync.Mutex
	heap []heapEntry // by due time

	// wakes counts the times run woke up, for tests.
	wakes atomic.Int64
}

func newScheduler() scheduler {
	return scheduler{wake: make(chan struct{}, 1), epoch: time.Now()}
}

// add schedules g's next probe at due, or up to slack earlier. A group
// removed meanwhile (its context is done) is not scheduled again.
func (s *scheduler) add(g *group, due time.Time, slack time.Duration) {
	if g.ctx.Err() != nil {
		return
	}
	e := heapEntry{due: int64(due.Sub(s.epoch)), slack: int64(slack), g: g}
	s.mu.Lock()
	if g.index >= 0 {
		s.heap[g.index] = e
		heapFix(s.heap, g.index)
	} else {
		s.heap = heapPush(s.heap, e)
	}
	first := g.index == 0
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

// poke wakes run up, without blocking: a group became the first due.
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// expedite moves g's next probe to now, when g is waiting for it (not in
// flight), is not due already, and was not expedited within gap before
// now. It reports whether it did.
func (s *scheduler) expedite(g *group, now time.Time, gap time.Duration) bool {
	t := int64(now.Sub(s.epoch))
	s.mu.Lock()
	ok := g.index >= 0 && s.heap[g.index].due > t && (g.expedited == 0 || t-g.expedited >= int64(gap))
	if ok {
		g.expedited = t
		s.heap[g.index].due, s.heap[g.index].slack = t, 0
		heapFix(s.heap, g.index)
	}
	first := ok && g.index == 0
	s.mu.Unlock()
	if first {
		s.poke()
	}
	return ok
}

// remove takes g out of the heap, if it is there.
func (s *scheduler) remove(g *group) {
	s.mu.Lock()
	if g.index >= 0 {
		s.heap = heapRemove(s.heap, g.index)
	}
	s.mu.Unlock()
}

// run calls start for each group as it falls due (taking it out of the
// heap), and batch after each batch of starts, until ctx is done. start
// and batch must not block.
//
// Every group behind the first has a due time at or after the first's,
// and the scheduler wakes up at the first's: no group starts after it is
// due, however the groups' slacks differ.
func (s *scheduler) run(ctx context.Context, start func(*group), batch func()) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.wakes.Add(1)
		s.mu.Lock()
		now := int64(time.Since(s.epoch))
		for len(s.heap) > 0 && s.heap[0].due-s.heap[0].slack <= now {
			g := s.heap[0].g
			s.heap = heapRemove(s.heap, 0)
			if g.ctx.Err() == nil {
				start(g)
			}
		}
		wait := time.Hour
		if len(s.heap) > 0 {
			wait = time.Duration(s.heap[0].due - now)
		}
		s.mu.Unlock()
		batch()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
	}
}

// heapEntry is a group in the heap, with its due time and slack in
// nanoseconds since the scheduler's epoch, kept in the entry so that
// ordering the heap does not visit the groups.
type heapEntry struct {
	due, slack int64
	g          *group
}

func (e heapEntry) heapKey() int64     { return e.due }
func (e heapEntry) setHeapIndex(i int) { e.g.index = i }
