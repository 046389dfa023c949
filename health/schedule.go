package health

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// maxSlack is how early a probe may start so that it shares a wake-up of
// the scheduler with others: probes due within maxSlack of the first one
// start with it. At 20,000 probes a second it turns 20,000 wake-ups (and
// as many bursts of work for the network stack and the endpoints) into at
// most 20, and it costs no precision: a probe's slack is at most a tenth
// of its delay, and its due time is drawn from the upper half of the ±10%
// jitter so that its start stays within it (see spread): no probe starts
// later than its jitter allowed, so detection is not slowed.
//
// Why 50ms and a tenth rather than 20ms and a twentieth: each batch costs
// a wake-up of the scheduler and of the event loop, a submission to the
// ring and a round of answers; in batches of 1,000 probes rather than
// 400, 10,000 endpoints at 500ms cost this node about a tenth less CPU
// (TestProbeScale).
const maxSlack = 50 * time.Millisecond

// A wheel entry keeps a slack in an int32 of nanoseconds.
const _ = int32(maxSlack)

// spread returns when a probe d after start is due and how early it may
// start: it starts between due-slack and due, which is uniformly spread
// over d ± 10% except that the slack is taken off the low end.
func spread(start time.Time, d time.Duration) (due time.Time, slack time.Duration) {
	jitter := d / 10
	slack = min(maxSlack, jitter)
	return start.Add(d - jitter + slack + rand.N(2*jitter-slack+1)), slack
}

// scheduler holds the groups waiting for their next probe, on a timing
// wheel by when each may start (see wheel), and starts their probes as
// they fall due.
// A group waits on the wheel only between probes, so it never has two in
// flight; a probe puts its group back when it is done (add).
//
// The scheduler wakes up when the first group is due, and then starts
// every group that may start (due within its slack), so that probes due
// close together start in one batch.
//
// The wheel never writes to a group: moving a group's probe (expedite,
// add while it waits) adds a new entry and leaves the old one in the
// wheel, stale, and removing a group only marks its entry stale; a stale
// entry is dropped when its time comes. Why: at 10,000 groups a group is
// touched once per interval, so each visit to one is a cache miss, and
// an entry that carries its times lets the wheel order the probes without
// visiting the groups. Stale entries are few (expedites are rate-limited
// per group; removals come with reloads), and each leaves within one
// interval, when it falls due.
type scheduler struct {
	// wake is signalled when a group became the first due.
	wake chan struct{}
	// epoch is what due times on the wheel count from.
	epoch time.Time

	// mu guards the wheel, wakeAt and the groups' entry fields
	// (group.seq, queued, due, expedited).
	mu sync.Mutex
	w  wheel
	// wakeAt is when run wakes up next (MaxInt64: only when poked): an
	// entry due before it pokes run.
	wakeAt int64

	// wakes counts the times run woke up, for tests.
	wakes atomic.Int64
}

func newScheduler() scheduler {
	return scheduler{wake: make(chan struct{}, 1), epoch: time.Now(), wakeAt: math.MaxInt64}
}

// add schedules g's next probe at due, or up to slack earlier, in place of
// any it had. A group removed meanwhile (its context is done) is not
// scheduled again.
func (s *scheduler) add(g *group, due time.Time, slack time.Duration) {
	if g.stopped() {
		return
	}
	s.mu.Lock()
	first := s.pushLocked(g, int64(due.Sub(s.epoch)), slack)
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

// pushLocked gives g a new entry, due at due (in the scheduler's time)
// or up to slack earlier, which makes any entry it had stale, and reports
// whether it is due before run wakes up. s.mu must be held.
func (s *scheduler) pushLocked(g *group, due int64, slack time.Duration) bool {
	g.seq++
	g.queued, g.due = true, due
	s.w.push(wheelEntry{due: due, g: g, slack: int32(slack), seq: g.seq})
	if due < s.wakeAt {
		s.wakeAt = due // one poke is enough
		return true
	}
	return false
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
	ok := g.queued && g.due > t && (g.expedited == 0 || t-g.expedited >= int64(gap))
	first := false
	if ok {
		g.expedited = t
		first = s.pushLocked(g, t, 0)
	}
	s.mu.Unlock()
	if first {
		s.poke()
	}
	return ok
}

// remove takes g out of the wheel, if it is there: its entry goes stale.
func (s *scheduler) remove(g *group) {
	s.mu.Lock()
	g.queued = false
	s.mu.Unlock()
}

// takeLocked takes every group that may start at now (its due time less
// its slack is not after now) out of the wheel, and calls start with it,
// dropping the stale entries it meets. s.mu must be held.
func (s *scheduler) takeLocked(now int64, start func(*group)) {
	s.w.take(now, func(e wheelEntry) {
		g := e.g
		if !g.queued || e.seq != g.seq {
			return // stale
		}
		g.queued = false
		start(g)
	})
}

// run calls start for each group as it falls due (taking it out of the
// wheel), and batch after each batch of starts, until ctx is done. start
// and batch must not block.
//
// The scheduler wakes up when the first entry is due (wheel.next): no
// group starts after it is due, however the groups' slacks differ. (The
// first may be a stale entry: the scheduler then wakes up early, drops
// it, and waits again.)
func (s *scheduler) run(ctx context.Context, start func(*group), batch func()) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.wakes.Add(1)
		s.mu.Lock()
		now := int64(time.Since(s.epoch))
		s.takeLocked(now, func(g *group) {
			if !g.stopped() {
				start(g)
			}
		})
		wait := time.Hour
		s.wakeAt = math.MaxInt64
		if due, ok := s.w.next(); ok {
			wait = time.Duration(due - now)
			s.wakeAt = due
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

// wheelEntry is a group's entry in the wheel, with its due time and slack
// in nanoseconds since the scheduler's epoch, kept in the entry so that
// ordering the entries does not visit the groups, and the sequence number
// that says whether the entry is still the group's (see scheduler). The
// wheel keeps those it does not span yet in a heap, by start.
type wheelEntry struct {
	due   int64
	g     *group
	slack int32 // at most maxSlack
	seq   uint32
}

func (e wheelEntry) heapKey() int64 { return e.start() }

// setHeapIndex tells the group nothing: see scheduler.
func (wheelEntry) setHeapIndex(int) {}
