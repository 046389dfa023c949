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

// Acks is the acknowledgement bookkeeping of one node: which nodes applied
// which drain versions, so that a write can wait until the live nodes have
// applied it, and which versions this node has applied itself, so that it
// acknowledges each version once to the node that wrote it. Safe for
// concurrent use.
type Acks struct {
	self string

	mu sync.Mutex
	// applied maps a drain ID to the highest version each node applied.
	applied map[string]map[string]Stamp
	// own holds the version of each drain this node last applied.
	own map[string]Stamp
	// wake is closed and replaced on every Applied, waking every Wait.
	wake chan struct{}
}

// NewAcks returns an empty tracker for the node named self.
func NewAcks(self string) *Acks {
	return &Acks{self: self, applied: make(map[string]map[string]Stamp), own: make(map[string]Stamp), wake: make(chan struct{})}
}

// Published records that this node's resolver now answers from a state
// built on recs, every record the node holds. Versions not seen before
// count as applied by this node; drains no longer held (forgotten after
// their grace period) are forgotten here too. It returns the
// acknowledgements owed to other nodes for their writes, by writing node;
// the caller sends them.
func (a *Acks) Published(recs []Record) map[string][]Ack {
	a.mu.Lock()
	defer a.mu.Unlock()
	held := make(map[string]bool, len(recs))
	for _, r := range recs {
		held[r.ID] = true
	}
	for id := range a.own {
		if !held[id] {
			delete(a.own, id)
			delete(a.applied, id)
		}
	}
	var mine []Ack
	var owed map[string][]Ack
	for _, r := range recs {
		if a.own[r.ID] == r.Stamp {
			continue
		}
		a.own[r.ID] = r.Stamp
		ack := Ack{ID: r.ID, Stamp: r.Stamp}
		mine = append(mine, ack)
		if r.Stamp.Node != a.self {
			if owed == nil {
				owed = make(map[string][]Ack)
			}
			owed[r.Stamp.Node] = append(owed[r.Stamp.Node], ack)
		}
	}
	if len(mine) > 0 {
		a.appliedLocked(a.self, mine)
	}
	return owed
}

// Applied records that node applied the given versions. It never blocks.
func (a *Acks) Applied(node string, acks []Ack) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.appliedLocked(node, acks)
}

func (a *Acks) appliedLocked(node string, acks []Ack) {
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
