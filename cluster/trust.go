package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// What a member's word is trusted for; doc.go states the rules. Gossip
// that breaks one is dropped, counted in
// gslb_cluster_rejected_messages_total{kind,reason} and logged at most
// once per rejectLogEvery per kind and reason.

// Kinds of rejected gossip, the values of the kind label.
const (
	rejGossip   = "gossip" // a packet or stream below our messages: memberlist's
	rejReport   = "report"
	rejLeave    = "leave"
	rejDrains   = "drains"
	rejDrainAck = "drain_ack"
	rejBeat     = "heartbeat"
	rejWant     = "want"
)

// Reasons, the values of the reason label.
const (
	// reasonUnauthenticated: no key of ours opened it, or it was not
	// encrypted or not labelled as gslbd's.
	reasonUnauthenticated = "unauthenticated"
	// reasonSeqAhead: a sequence number further ahead of our clock (in
	// nanoseconds) than MaxSkew.
	reasonSeqAhead = "seq_ahead"
	// reasonTimeAhead: a report made further ahead of our clock than
	// MaxSkew.
	reasonTimeAhead = "time_ahead"
	// reasonStampAhead: a drain record stamped further ahead than the
	// drain table's skew.
	reasonStampAhead = "stamp_ahead"
	// reasonInvalid: a drain record that breaks the drain rules.
	reasonInvalid = "invalid"
	// reasonUnknownSender: drains or acknowledgements from a name that
	// memberlist does not list as alive.
	reasonUnknownSender = "unknown_sender"
	// reasonContradicted: a leave for a node that was heard from after it.
	reasonContradicted = "contradicted"
	// reasonUnconfirmed: a leave that memberlist did not confirm within
	// leaveConfirm (the node stayed alive).
	reasonUnconfirmed = "unconfirmed"
)

// rejections are the kind and reason pairs that occur, so that each
// counter exists (at zero) from the start.
var rejections = []struct{ kind, reason string }{
	{rejGossip, reasonUnauthenticated},
	{rejReport, reasonSeqAhead},
	{rejReport, reasonTimeAhead},
	{rejLeave, reasonSeqAhead},
	{rejLeave, reasonContradicted},
	{rejLeave, reasonUnconfirmed},
	{rejDrains, reasonStampAhead},
	{rejDrains, reasonInvalid},
	{rejDrains, reasonUnknownSender},
	{rejDrainAck, reasonUnknownSender},
	{rejBeat, reasonSeqAhead},
	{rejBeat, reasonTimeAhead},
	{rejWant, reasonUnknownSender},
}

// rejectLogEvery bounds the log lines about rejected gossip: one per kind
// and reason per interval, saying how many were not logged since.
const rejectLogEvery = 10 * time.Second

// leaveConfirm is how long a leave message alone shows a node as left:
// a node that really leaves is declared gone by memberlist well within
// it (its Leave waits at most leaveTimeout for the broadcast).
const leaveConfirm = 2 * time.Second

// logLimiter lets through one log line per key per interval.
type logLimiter struct {
	every time.Duration
	// mu guards the maps.
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line for key may be logged at now, and how
// many were held back since the last one.
func (l *logLimiter) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		l.suppressed[key]++
		return false, 0
	}
	n := l.suppressed[key]
	l.last[key] = now
	l.suppressed[key] = 0
	return true, n
}

// reject counts one rejected message and logs it, rate-limited. It takes
// no lock of Cluster's, so it may be called with mu held.
func (c *Cluster) reject(kind, reason string, attrs ...any) {
	c.metrics.rejected.WithLabelValues(kind, reason).Inc()
	ok, suppressed := c.rejectLog.allow(kind+"/"+reason, time.Now())
	if !ok {
		return
	}
	args := append([]any{"kind", kind, "reason", reason}, attrs...)
	if suppressed > 0 {
		args = append(args, "not_logged_since_last", suppressed)
	}
	c.log.Warn("gossip rejected", args...)
}

// unauthenticated takes memberlist's log lines about packets and streams
// that failed authentication.
func (c *Cluster) unauthenticated(line string) {
	c.reject(rejGossip, reasonUnauthenticated, "detail", line)
}

// seqAhead reports whether seq is implausible at now: sequence numbers
// start at the origin's boot time in nanoseconds and grow by one per
// report, so one further ahead of our clock than MaxSkew was not made by
// a node whose clock agrees with ours.
func (c *Cluster) seqAhead(seq uint64, now time.Time) bool {
	limit := now.Add(c.cfg.MaxSkew).UnixNano()
	return limit > 0 && seq > uint64(limit)
}

// beatAhead reports whether a heartbeat number is implausible at now:
// heartbeat numbers are the origin's clock in milliseconds, so one further
// ahead of ours than MaxSkew was not made by a node whose clock agrees
// with ours. 0 (no heartbeat) is never ahead.
func (c *Cluster) beatAhead(beat uint64, now time.Time) bool {
	limit := now.Add(c.cfg.MaxSkew).UnixMilli()
	return limit > 0 && beat > uint64(limit)
}

// KeyID names a gossip key without revealing it: the first 8 hex digits
// of its SHA-256. Operators compare IDs across nodes during a rotation.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Encrypted reports whether gossip is encrypted (a keyring is in use).
func (c *Cluster) Encrypted() bool { return c.keyring != nil }

// Insecure reports whether this node gossips in clear text on an address
// other than loopback, which only Config.Insecure allows.
func (c *Cluster) Insecure() bool {
	_, public := c.cfg.publicAddr()
	return c.keyring == nil && public
}

// KeyIDs returns the [KeyID] of every key in the keyring, the primary
// (the one that encrypts) first; nil without encryption.
func (c *Cluster) KeyIDs() []string {
	if c.keyring == nil {
		return nil
	}
	var ids []string
	for _, k := range c.keyring.GetKeys() {
		ids = append(ids, KeyID(k))
	}
	return ids
}

// SetKeys makes keys the keyring, keys[0] the primary, without a restart:
// the keys not yet held are installed, the primary switched, and the keys
// no longer listed removed. A key rotation is three calls on every node
// in turn, each waiting for every node to finish the previous one:
// install the new key (old primary first, new key after), switch (new
// key first, old after), remove the old (new key alone). Turning
// encryption on or off takes a restart. Safe for concurrent use.
func (c *Cluster) SetKeys(keys [][]byte) error {
	if c.keyring == nil {
		if len(keys) == 0 {
			return nil
		}
		return errors.New("gossip runs without encryption: adding a keyring takes a restart")
	}
	if len(keys) == 0 {
		return errors.New("gossip is encrypted: removing every key takes a restart")
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("keys[%d]: %d bytes, want 16, 24 or 32", i, len(k))
		}
	}
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	kr := c.keyring
	before := c.KeyIDs()
	for _, k := range keys {
		if err := kr.AddKey(slices.Clone(k)); err != nil {
			return err
		}
	}
	held := slices.Clone(kr.GetKeys())
	wanted := func(k []byte) bool {
		return slices.ContainsFunc(keys, func(w []byte) bool { return bytes.Equal(w, k) })
	}
	// memberlist's RemoveKey shifts the keys after the removed one in
	// place, in the array its packet goroutines are reading without a
	// lock. Removing only from the end writes nothing there: so the keys
	// to keep are brought to the front first, each switch to a key that
	// is staying (the last switch makes keys[0] the primary).
	tail := len(held)
	for tail > 0 && !wanted(held[tail-1]) {
		tail--
	}
	if slices.ContainsFunc(held[:tail], func(k []byte) bool { return !wanted(k) }) {
		for i := len(keys) - 1; i >= 0; i-- {
			if err := kr.UseKey(keys[i]); err != nil {
				return err
			}
		}
	} else if err := kr.UseKey(keys[0]); err != nil {
		return err
	}
	for {
		ring := kr.GetKeys()
		last := ring[len(ring)-1]
		if len(ring) == 1 || wanted(last) {
			break
		}
		if err := kr.RemoveKey(last); err != nil {
			return err
		}
	}
	if after := c.KeyIDs(); !slices.Equal(before, after) {
		c.log.Info("gossip keyring changed", "keys", after, "primary", after[0], "before", before)
	}
	return nil
}
