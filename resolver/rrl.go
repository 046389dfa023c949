package resolver

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Response rate limiting (RRL), after BIND's: a server that answers
// spoofed queries becomes an amplifier aimed at whoever they claim to come
// from. RRL counts identical responses per client prefix, and over the
// limit answers only every Slip-th of them, with an empty truncated reply
// (TC=1) so that a real client retries over TCP, which cannot be spoofed;
// the others are dropped.
//
// An account is one (client prefix, response) pair. "Identical" is
// judged on the reply after its header and question: the answer,
// authority and additional sections, and the rcode. Every NXDOMAIN of a
// zone carries the same SOA, so random names under one zone count as one
// response, as BIND's "nxdomains" account does.
//
// Each account holds a balance of responses, credited Rate a second up to
// Rate, debited one per response. A response is sent while the balance is
// not negative; the balance goes down to -Rate*Window at most, so a client
// that floods must stay quiet for about Window before it is answered
// again.
//
// The table has a fixed number of slots, each two atomic words (key and
// state): no lock, no allocation. Two accounts sharing a slot take it
// over from each other, which at worst lets a few responses through.

// RRLConfig configures response rate limiting; the zero value turns it off.
type RRLConfig struct {
	// ResponsesPerSecond is how many identical responses a client prefix
	// gets a second. Zero turns RRL off.
	ResponsesPerSecond int
	// Window is how long over-limit responses are remembered: an account
	// owes at most ResponsesPerSecond*Window responses. Default 5s.
	Window time.Duration
	// IPv4Prefix and IPv6Prefix are the lengths of the client prefixes
	// that share an account. Defaults 24 and 56.
	IPv4Prefix, IPv6Prefix int
	// Slip: every Slip-th response over the limit is sent as an empty
	// truncated reply, the others are dropped. 1 truncates every one, 0
	// drops every one (BIND's default is 2).
	Slip int
}

// rrlSlots is the table size: a power of two, 16 bytes a slot (1 MiB).
const rrlSlots = 1 << 16

type rrlSlot struct {
	key   atomic.Uint64
	state atomic.Uint64 // second (high 32 bits), balance (low 32, int32)
}

type rrl struct {
	rate, min int32 // balance ceiling and floor
	v4len     int
	v6len     int
	slip      uint64
	seed      maphash.Seed
	epoch     time.Time
	slots     []rrlSlot
	over      []paddedCount // per shard: responses over the limit, for Slip
	dropped   []paddedCount
	slipped   []paddedCount
	now       func() time.Time
}

type paddedCount struct {
	n atomic.Uint64
	_ [56]byte
}

// newRRL returns the limiter of cfg, nil when it is off, and registers its
// counters with reg (when not nil) either way.
func newRRL(cfg RRLConfig, shards int, reg prometheus.Registerer) (*rrl, error) {
	var l *rrl
	if cfg.ResponsesPerSecond > 0 {
		window := cfg.Window
		if window <= 0 {
			window = 5 * time.Second
		}
		v4, v6 := cfg.IPv4Prefix, cfg.IPv6Prefix
		if v4 <= 0 || v4 > 32 {
			v4 = 24
		}
		if v6 <= 0 || v6 > 128 {
			v6 = 56
		}
		rate := int32(min(cfg.ResponsesPerSecond, 1<<20))
		l = &rrl{rate: rate, min: -int32(min(int64(rate)*int64(max(window/time.Second, 1)), 1<<30)),
			v4len: v4, v6len: v6, slip: uint64(max(cfg.Slip, 0)), seed: maphash.MakeSeed(), epoch: time.Now(),
			slots: make([]rrlSlot, rrlSlots), over: make([]paddedCount, shards),
			dropped: make([]paddedCount, shards), slipped: make([]paddedCount, shards), now: time.Now}
	}
	if reg != nil {
		sum := func(pick func(*rrl) []paddedCount) func() float64 {
			return func() float64 {
				if l == nil {
					return 0
				}
				var n uint64
				for i := range pick(l) {
					n += pick(l)[i].n.Load()
				}
				return float64(n)
			}
		}
		for _, c := range []prometheus.Collector{
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gslb", Subsystem: "dns", Name: "rrl_dropped_total",
				Help: "UDP responses not sent because their client prefix went over the response rate limit."},
				sum(func(l *rrl) []paddedCount { return l.dropped })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gslb", Subsystem: "dns", Name: "rrl_slipped_total",
				Help: "UDP responses over the response rate limit sent as an empty truncated reply, for the client to retry over TCP."},
				sum(func(l *rrl) []paddedCount { return l.slipped })),
		} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// limit returns what to send for reply, a UDP response to client: reply
// itself, the same reply made empty and truncated (its buffer is reused),
// or nil to send nothing. A nil limiter sends everything.
func (l *rrl) limit(shard int, client netip.Addr, reply []byte) []byte {
	if l == nil || len(reply) < 12 {
		return reply
	}
	qend := questionEnd(reply)
	if qend < 0 {
		return reply
	}
	key := l.key(client, reply, qend)
	if l.allow(key) {
		return reply
	}
	shard %= len(l.over)
	if l.slip > 0 && l.over[shard].n.Add(1)%l.slip == 0 {
		l.slipped[shard].n.Add(1)
		reply[2] |= 0x02 // TC
		clear(reply[6:12])
		return reply[:qend]
	}
	l.dropped[shard].n.Add(1)
	return nil
}

// key hashes the client's prefix, the rcode and what follows reply's
// question.
func (l *rrl) key(client netip.Addr, reply []byte, qend int) uint64 {
	client = client.Unmap()
	var hi, lo uint64
	if client.Is4() {
		a := client.As4()
		v := uint64(binary.BigEndian.Uint32(a[:]))
		lo = v &^ (1<<(32-l.v4len) - 1)
		hi = 4
	} else {
		a := client.As16()
		hi, lo = binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
		switch {
		case l.v6len <= 64:
			hi &^= 1<<(64-l.v6len) - 1
			lo = 0
		case l.v6len < 128:
			lo &^= 1<<(128-l.v6len) - 1
		}
	}
	h := maphash.Bytes(l.seed, reply[qend:])
	h ^= mix(hi ^ mix(lo^uint64(reply[3]&0x0f)<<56))
	return h | 1 // 0 marks an empty slot
}

// allow debits key's account and says whether its balance allows the
// response.
func (l *rrl) allow(key uint64) bool {
	sec := uint32(l.now().Sub(l.epoch) / time.Second)
	s := &l.slots[key&(rrlSlots-1)]
	if s.key.Load() != key {
		// A new account (or one that takes the slot over): full balance.
		s.key.Store(key)
		s.state.Store(uint64(sec)<<32 | uint64(uint32(l.rate-1)))
		return true
	}
	for {
		old := s.state.Load()
		last, bal := uint32(old>>32), int32(uint32(old))
		if sec != last {
			credit := int64(sec-last) * int64(l.rate)
			bal = int32(min(int64(bal)+credit, int64(l.rate)))
		}
		ok := bal > 0
		bal = max(bal-1, l.min)
		if s.state.CompareAndSwap(old, uint64(sec)<<32|uint64(uint32(bal))) {
			return ok
		}
	}
}

// questionEnd returns the offset just past the question of a reply with
// one question, or -1.
func questionEnd(b []byte) int {
	if binary.BigEndian.Uint16(b[4:6]) != 1 {
		return -1
	}
	i := 12
	for i < len(b) {
		n := int(b[i])
		switch {
		case n == 0:
			if i+5 > len(b) {
				return -1
			}
			return i + 5
		case n&0xc0 != 0:
			return -1 // our replies do not compress the question
		}
		i += 1 + n
	}
	return -1
}
