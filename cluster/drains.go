package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/gslbd/gslbd/drain"
)

// Drains is the node's table of operator drains as cluster sees it;
// *drain.Store implements it. cluster carries drain records between nodes
// and leaves every rule about them to the table. Its methods are called
// from memberlist's goroutines: they must be safe for concurrent use and
// must not block.
type Drains interface {
	// Records returns every record, tombstones included, for a
	// full-state exchange.
	Records() []drain.Record
	// MergeFrom applies records that the member from sent. It returns
	// the refused records' errors joined, one per record, wrapping
	// drain.ErrFutureStamp or drain.ErrInvalid.
	MergeFrom(from string, recs []drain.Record, now time.Time) ([]drain.Record, error)
}

// DrainAcks takes the drain acknowledgements peers send; *drain.Acks
// implements it. Called from memberlist's goroutines: safe for concurrent
// use and never blocking.
type DrainAcks interface {
	// Applied records that node has applied these drain versions.
	Applied(node string, acks []drain.Ack)
}

var (
	_ Drains    = (*drain.Store)(nil)
	_ DrainAcks = (*drain.Acks)(nil)
)

// wireDrains carries drain records: one or a few from a local write, or
// every record in a push/pull. Origin is the sending node.
type wireDrains struct {
	Origin  string         `json:"origin"`
	Records []drain.Record `json:"records"`
}

// wireDrainAck says which drain versions Origin has applied (published to
// its resolver). It is sent to the node that made the write.
type wireDrainAck struct {
	Origin string      `json:"origin"`
	Acks   []drain.Ack `json:"acks"`
}

func encodeDrains(origin string, recs []drain.Record) []byte {
	return encode(kindDrains, wireDrains{Origin: origin, Records: recs})
}

func decodeDrains(body []byte) (wireDrains, error) {
	var w wireDrains
	if err := json.Unmarshal(body, &w); err != nil {
		return wireDrains{}, fmt.Errorf("decode drains: %w", err)
	}
	if w.Origin == "" {
		return wireDrains{}, errors.New("decode drains: no origin")
	}
	return w, nil
}

func encodeDrainAck(origin string, acks []drain.Ack) []byte {
	return encode(kindDrainAck, wireDrainAck{Origin: origin, Acks: acks})
}

func decodeDrainAck(body []byte) (wireDrainAck, error) {
	var w wireDrainAck
	if err := json.Unmarshal(body, &w); err != nil {
		return wireDrainAck{}, fmt.Errorf("decode drain ack: %w", err)
	}
	if w.Origin == "" {
		return wireDrainAck{}, errors.New("decode drain ack: no origin")
	}
	return w, nil
}

// BroadcastDrains sends records written on this node to every alive peer
// at once (over UDP when they fit a packet, else over TCP), and queues
// each for memberlist's gossip, which retransmits it to make up for lost
// packets. Push/pull carries every record as well, so a peer that was
// away catches up when it rejoins. It does not block on the network.
func (c *Cluster) BroadcastDrains(recs []drain.Record) {
	if len(recs) == 0 {
		return
	}
	msg := encodeDrains(c.cfg.Name, recs)
	for _, r := range recs {
		one := msg
		if len(recs) > 1 {
			one = encodeDrains(c.cfg.Name, []drain.Record{r})
		}
		if len(one) <= maxPacket {
			// Named by drain ID: a newer write of the same drain replaces
			// a queued older one.
			c.queue.QueueBroadcast(&broadcast{name: "drain/" + r.ID, msg: one})
		}
	}
	c.mu.Lock()
	peers := c.peersLocked()
	c.mu.Unlock()
	for i := range peers {
		to := peers[i]
		if len(msg) <= maxPacket {
			if err := c.ml.SendBestEffort(&to, msg); err != nil {
				c.log.Debug("send drains to peer", "peer", to.Name, "err", err)
			}
			continue
		}
		c.goSend(func() {
			if err := c.ml.SendReliable(&to, msg); err != nil {
				c.log.Debug("send drains to peer over tcp", "peer", to.Name, "err", err)
			}
		})
	}
}

// AckDrains tells node to that this node has applied the given drain
// versions, over TCP on a goroutine of its own. A node that is not alive
// is skipped: nobody there waits for the acknowledgement.
func (c *Cluster) AckDrains(to string, acks []drain.Ack) {
	if len(acks) == 0 || to == c.cfg.Name {
		return
	}
	c.mu.Lock()
	m, ok := c.members[to]
	var node memberlist.Node
	if ok && m.state == MemberAlive {
		node = m.node
	}
	c.mu.Unlock()
	if node.Name == "" {
		return
	}
	msg := encodeDrainAck(c.cfg.Name, acks)
	c.goSend(func() {
		if err := c.ml.SendReliable(&node, msg); err != nil {
			c.log.Debug("send drain ack", "peer", to, "err", err)
		}
	})
}

// goSend runs f on a goroutine that Run waits for, unless Run is already
// waiting for them (the node is stopping): then f is dropped.
func (c *Cluster) goSend(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sendsClosed {
		c.sends.Go(f)
	}
}

// applyDrains hands records to the drain table, in the name of the
// member that sent them. The sender must be a member memberlist lists as
// alive: the name is the sender's own claim, but with encryption only a
// member can make it, and it is what the audit trail records as "from".
// The table refuses records stamped too far ahead and invalid ones; each
// refusal is counted here.
func (c *Cluster) applyDrains(m wireDrains, now time.Time) error {
	if c.cfg.Drains == nil || m.Origin == c.cfg.Name || len(m.Records) == 0 {
		return nil
	}
	if !c.isMember(m.Origin) {
		c.reject(rejDrains, reasonUnknownSender, "from", m.Origin, "records", len(m.Records))
		return nil
	}
	_, err := c.cfg.Drains.MergeFrom(m.Origin, m.Records, now)
	if err == nil {
		return nil
	}
	all := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	}
	for _, e := range all {
		reason := reasonInvalid
		if errors.Is(e, drain.ErrFutureStamp) {
			reason = reasonStampAhead
		}
		c.reject(rejDrains, reason, "from", m.Origin, "err", e)
	}
	return nil
}

func (c *Cluster) applyDrainAck(m wireDrainAck) {
	if c.cfg.DrainAcks == nil || m.Origin == c.cfg.Name {
		return
	}
	if !c.isMember(m.Origin) {
		c.reject(rejDrainAck, reasonUnknownSender, "from", m.Origin)
		return
	}
	c.cfg.DrainAcks.Applied(m.Origin, m.Acks)
}

// isMember reports whether name is a member this node knows: alive, or
// failed or left recently enough to be retried (see reconnectLoop). A
// member that was on the other side of a partition is still dead to
// memberlist when the push/pull that heals the partition brings its
// drains, so "alive" alone would refuse exactly the records that the
// rejoin is for; a name nobody ever listed is still refused.
func (c *Cluster) isMember(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.members[name]
	return ok
}
