package health

import (
	"math"
	"math/bits"
)

// wheel holds the scheduler's entries by when each may start (its due
// time less its slack), in buckets of wheelTick: a timing wheel. Adding
// an entry appends it to its bucket, and the entries that may start by
// now are read bucket after bucket, in the order they were added to each,
// so a probe costs the wheel two visits to memory that is read in order
// (the end of one bucket, a run through another), where a heap of 10,000
// groups costs a dozen cache misses at scattered places, its depth.
//
// The wheel spans wheelSize ticks from cur, the tick of the last time it
// was read; an entry that may start beyond that waits in far, a heap by
// start, and moves into the wheel as the wheel turns towards it. An entry
// whose start has passed goes into cur's bucket.
//
// Each bucket keeps the earliest due time among its entries, so that the
// scheduler wakes up exactly when the first entry is due (next), and then
// starts every entry whose start has come, as it did with a heap: probes
// due close together start in one batch.
//
// Entries are the scheduler's: the wheel neither reads nor writes a group.
type wheel struct {
	buckets []wheelBucket // wheelSize of them, made with the first entry
	// used has a bit set for each bucket that holds entries.
	used [wheelSize / 64]uint64
	// cur is the tick (time >> wheelShift) the wheel was last read at:
	// the first bucket that may hold entries.
	cur int64
	far []wheelEntry // beyond the wheel's span, a heap by start
	n   int          // entries in the buckets and in far
}

type wheelBucket struct {
	entries []wheelEntry
	minDue  int64 // the earliest due time of entries; MaxInt64 when none
}

const (
	// wheelShift makes a tick 2^20ns, about a millisecond: less than
	// the smallest slack a probe has at intervals of 100ms or more, so
	// that an entry never waits in its bucket past its due time.
	wheelShift = 20
	// wheelSize ticks span about 4.3s: probes at intervals up to that
	// never visit far.
	wheelSize = 4096
	wheelMask = wheelSize - 1
	// slackTicks is how many ticks after the first used bucket may hold
	// an entry due before every entry of the first.
	slackTicks = int64(maxSlack>>wheelShift) + 1
)

// start is when e may start: its due time less its slack.
func (e wheelEntry) start() int64 { return e.due - int64(e.slack) }

// push adds e.
func (w *wheel) push(e wheelEntry) {
	w.n++
	tick := max(e.start()>>wheelShift, w.cur)
	if tick-w.cur >= wheelSize {
		w.far = heapPush(w.far, e)
		return
	}
	if w.buckets == nil {
		w.buckets = make([]wheelBucket, wheelSize)
		for i := range w.buckets {
			w.buckets[i].minDue = math.MaxInt64
		}
	}
	i := tick & wheelMask
	b := &w.buckets[i]
	b.entries = append(b.entries, e)
	b.minDue = min(b.minDue, e.due)
	w.used[i/64] |= 1 << (i % 64)
}

// firstUsed returns the tick of the first bucket, from cur on, that
// holds entries, if one does.
func (w *wheel) firstUsed() (int64, bool) {
	const words = wheelSize / 64
	p := w.cur & wheelMask
	wi, bit := p/64, p%64
	if word := w.used[wi] >> bit; word != 0 {
		return w.cur + int64(bits.TrailingZeros64(word)), true
	}
	// The words after, around the wheel and back to the bits of the
	// first one before p.
	for k := int64(1); k <= words; k++ {
		j := (wi + k) % words
		word := w.used[j]
		if k == words {
			word &= 1<<bit - 1
		}
		if word != 0 {
			i := j*64 + int64(bits.TrailingZeros64(word))
			return w.cur + (i-p)&wheelMask, true
		}
	}
	return 0, false
}

// next returns the earliest due time of the entries, to wake up at, and
// false when there are none. Stale entries count: the scheduler then
// wakes up early, drops them, and waits again.
func (w *wheel) next() (int64, bool) {
	if w.n == 0 {
		return 0, false
	}
	best := int64(math.MaxInt64)
	if len(w.far) > 0 {
		// Its start: far's entries are ordered by it.
		best = w.far[0].start()
	}
	first, ok := w.firstUsed()
	if !ok {
		return best, best != math.MaxInt64
	}
	// An entry of a later bucket may start no sooner than its bucket,
	// and so is due no sooner: only the first few buckets can hold the
	// earliest due time.
	for tick := first; tick < first+slackTicks && tick<<wheelShift < best; tick++ {
		if b := &w.buckets[tick&wheelMask]; len(b.entries) > 0 {
			best = min(best, b.minDue)
		}
	}
	return best, true
}

// take calls fire with each entry that may start by now (its start is not
// after now) and removes it, bucket by bucket, and turns the wheel to now.
// fire must not push.
func (w *wheel) take(now int64, fire func(wheelEntry)) {
	nowTick := now >> wheelShift
	for {
		tick, ok := w.firstUsed()
		if !ok || tick > nowTick {
			break
		}
		i := tick & wheelMask
		b := &w.buckets[i]
		if tick < nowTick {
			// Every entry of a bucket before now's may start.
			for _, e := range b.entries {
				fire(e)
			}
			w.n -= len(b.entries)
			w.empty(i, 0)
			continue
		}
		kept, due := 0, int64(math.MaxInt64)
		for _, e := range b.entries {
			if e.start() <= now {
				fire(e)
				w.n--
				continue
			}
			b.entries[kept] = e
			kept++
			due = min(due, e.due)
		}
		w.empty(i, kept)
		b.minDue = due
		break
	}
	w.cur = max(w.cur, nowTick)
	// The entries of far that the wheel now spans move into it.
	for len(w.far) > 0 && w.far[0].start()>>wheelShift-w.cur < wheelSize {
		e := w.far[0]
		w.far = heapRemove(w.far, 0)
		w.n--
		if e.start() <= now {
			fire(e)
			continue
		}
		w.push(e)
	}
}

// empty keeps the first kept entries of bucket i and forgets the others.
// A bucket that grew large in a burst gives its memory back once empty.
func (w *wheel) empty(i int64, kept int) {
	b := &w.buckets[i]
	clear(b.entries[kept:])
	b.entries = b.entries[:kept]
	if kept > 0 {
		return
	}
	if cap(b.entries) > maxKeptBucket {
		b.entries = nil
	}
	b.minDue = math.MaxInt64
	w.used[i/64] &^= 1 << (i % 64)
}

// maxKeptBucket bounds the room an empty bucket keeps: at 10,000 groups
// probed every 500ms a bucket takes about 20 entries.
const maxKeptBucket = 256
