package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate adapts memberlist's Delegate onto [Cluster]. memberlist calls
// it from its packet and stream goroutines, concurrently: every method
// copies what it needs and returns without blocking on the network.
type delegate struct{ c *Cluster }

var _ memberlist.Delegate = (*delegate)(nil)

// NodeMeta returns the site and config hash. New checked that they fit in
// memberlist.MetaMaxSize, the only limit memberlist passes.
func (d *delegate) NodeMeta(limit int) []byte { return *d.c.meta.Load() }

// NotifyMsg receives a frame sent directly or gossiped. buf is reused by
// memberlist after the call; decoding copies what it keeps.
func (d *delegate) NotifyMsg(buf []byte) { d.c.receive(buf) }

// GetBroadcasts hands memberlist the queued frames and a heartbeat digest
// that fit in a packet.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.broadcasts(overhead, limit)
}

// LocalState returns our full state for a push/pull, on join and
// periodically.
func (d *delegate) LocalState(join bool) []byte { return d.c.localState(time.Now()) }

// MergeRemoteState applies a peer's full state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) { d.c.mergeState(buf) }

// events adapts memberlist's EventDelegate onto [Cluster]. memberlist
// calls it with its node lock held, one event at a time: it must not call
// back into memberlist.
type events struct{ c *Cluster }

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(n *memberlist.Node)   { e.c.memberEvent(n, MemberAlive) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.c.memberEvent(n, MemberAlive) }

// NotifyLeave covers both failure and graceful leave: memberlist v0.7.0
// does not tell them apart in the event (Node.State is not set), so a
// node is shown as left only if its own leave message arrived.
func (e *events) NotifyLeave(n *memberlist.Node) { e.c.memberEvent(n, MemberDead) }
