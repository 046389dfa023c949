package health

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// scheduler holds the groups waiting for their next probe, in a heap
// ordered by when each is due, and starts their probes as they fall due.
// A group is in the heap only between probes, so it never has two in
// flight; a probe puts its group back when it is done (add).
type scheduler struct {
	// wake is signalled when a group became the first due.
	wake chan struct{}

	// mu guards the heap and the groups' due and index.
	mu   sync.Mutex
	heap groupHeap
}

func newScheduler() scheduler {
	return scheduler{wake: make(chan struct{}, 1)}
}

// add schedules g's next probe at due. A group removed meanwhile (its
// context is done) is not scheduled again.
func (s *scheduler) add(g *group, due time.Time) {
	if g.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	g.due = due
	if g.index >= 0 {
		heap.Fix(&s.heap, g.index)
	} else {
		heap.Push(&s.heap, g)
	}
	first := g.index == 0
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// remove takes g out of the heap, if it is there.
func (s *scheduler) remove(g *group) {
	s.mu.Lock()
	if g.index >= 0 {
		heap.Remove(&s.heap, g.index)
	}
	s.mu.Unlock()
}

// run calls start for each group as it falls due (taking it out of the
// heap) until ctx is done. start must not block.
func (s *scheduler) run(ctx context.Context, start func(*group)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.heap) > 0 && !s.heap[0].due.After(now) {
			g := heap.Pop(&s.heap).(*group)
			if g.ctx.Err() == nil {
				start(g)
			}
		}
		wait := time.Hour
		if len(s.heap) > 0 {
			wait = s.heap[0].due.Sub(now)
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
	}
}

// groupHeap is a min-heap of groups by due time, for container/heap.
type groupHeap []*group

func (h groupHeap) Len() int           { return len(h) }
func (h groupHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h groupHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *groupHeap) Push(x any) {
	g := x.(*group)
	g.index = len(*h)
	*h = append(*h, g)
}

func (h *groupHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	g.index = -1
	*h = old[:len(old)-1]
	return g
}
