package drain

import (
	"context"
	"slices"
	"sync"
)

// Ack says that a node applied a version of a drain: its resolver answers
// from a state that holds that version or a later one.
type Ack struct {
	ID    string `json:"id"`
	Stamp Stamp  `json:"stamp"`
}

// Acks collects which nodes applied which drain versions, so that a write
// can wait until the live nodes have applied it. Safe for concurrent use.
type Acks struct {
	mu sync.Mutex
	// applied maps a drain ID to the highest version each node applied.
	applied map[string]map[string]Stamp
	// wake is closed and replaced on every Applied, waking every Wait.
	wake chan struct{}
}

// NewAcks returns an empty tracker.
func NewAcks() *Acks {
	return &Acks{applied: make(map[string]map[string]Stamp), wake: make(chan struct{})}
}

// Applied records that node applied the given versions. It never blocks.
func (a *Acks) Applied(node string, acks []Ack) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ack := range acks {
		m := a.applied[ack.ID]
		if m == nil {
			m = make(map[string]Stamp)
			a.applied[ack.ID] = m
		}
		if ack.Stamp.Compare(m[node]) > 0 {
			m[node] = ack.Stamp
		}
	}
	close(a.wake)
	a.wake = make(chan struct{})
}

// Forget drops what is known about drain id.
func (a *Acks) Forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.applied, id)
}

// Wait blocks until every node in nodes has applied version s of drain
// id (or a later one), or until ctx is done. It returns the nodes that
// have and those that have not, each sorted.
func (a *Acks) Wait(ctx context.Context, id string, s Stamp, nodes []string) (applied, missing []string) {
	for {
		a.mu.Lock()
		applied, missing = nil, nil
		for _, n := range nodes {
			if got, ok := a.applied[id][n]; ok && got.Compare(s) >= 0 {
				applied = append(applied, n)
			} else {
				missing = append(missing, n)
			}
		}
		wake := a.wake
		a.mu.Unlock()
		slices.Sort(applied)
		slices.Sort(missing)
		applied, missing = slices.Compact(applied), slices.Compact(missing)
		if len(missing) == 0 {
			return applied, missing
		}
		select {
		case <-ctx.Done():
			return applied, missing
		case <-wake:
		}
	}
}
