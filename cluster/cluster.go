package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/health"
)

// Member states, the values of [Member].State.
const (
	// MemberAlive: memberlist considers the node alive and its heartbeat
	// (if it has announced a report) is fresh.
	MemberAlive = "alive"
	// MemberSuspect: memberlist still lists the node, but no heartbeat has
	// arrived within Staleness. memberlist v0.7.0 does not expose its own
	// suspicion, and ours comes much sooner.
	MemberSuspect = "suspect"
	// MemberDead: memberlist declared the node failed.
	MemberDead = "dead"
	// MemberLeft: the node announced a graceful departure.
	MemberLeft = "left"
)

// Member is a cluster node as this node sees it.
type Member struct {
	Name       string
	Site       string
	Addr       netip.AddrPort // its gossip address
	State      string         // MemberAlive, MemberSuspect, MemberDead or MemberLeft
	ConfigHash string
	// SameConfig is whether ConfigHash equals this node's.
	SameConfig bool
}

// Cluster is this node's membership in the gossip cluster: it sends the
// local health report to every peer when it changes, keeps it fresh on
// every peer through gossiped heartbeats, and holds the latest report of
// each other node. Its methods are safe for concurrent use.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	ml      *memberlist.Memberlist // set once in New, before anything reads it
	queue   *memberlist.TransmitLimitedQueue
	// keyring is memberlist's, nil without encryption. keysMu serializes
	// SetKeys.
	keyring   *memberlist.Keyring
	keysMu    sync.Mutex
	rejectLog *logLimiter
	// hash and meta are this node's config hash and the node meta that
	// carries it; both change only through SetConfigHash.
	hash  atomic.Pointer[string]
	meta  atomic.Pointer[[]byte]
	seeds []string

	changed chan struct{} // one slot: remote state changed
	wake    chan struct{} // one slot: something is due in the outbox (see flush)

	// alive counts members in state alive, ourselves included. It is
	// atomic because the broadcast queue reads it while holding its own
	// lock, which must never wait on mu.
	alive     atomic.Int32
	running   atomic.Bool
	skipLeave atomic.Bool // tests: stop as if the process had crashed
	sends     sync.WaitGroup

	// mu guards the fields below. It is never held while calling into
	// memberlist (memberlist calls our event methods with its own locks
	// held).
	mu    sync.Mutex
	seq   uint64         // Seq of the latest local report; starts at boot time in ns
	beat  uint64         // our latest heartbeat number (see beatEntry)
	local *health.Report // latest local report, nil before the first Announce
	// quiet is set when Run is ending: no more heartbeats of ours, so
	// that none made after our leave message can contradict it.
	quiet bool
	table table
	// The outbox, which flush empties: announce is set when the local
	// report changed and is still to be sent to every peer; replies holds
	// per peer the origins whose reports it asked for (its own name when
	// it joined: it is greeted with ours); wants per peer the origins to
	// ask it for, and asked when each origin was last asked for.
	announce bool
	replies  map[string]map[string]bool
	wants    map[string]map[string]bool
	asked    map[string]time.Time
	members  map[string]*member
	inflight map[string]bool // peers with a TCP send of ours in progress
	// sendsClosed is set when Run waits for the sends: callers outside
	// Run's goroutines (drain writes and acks) may not add to them then.
	sendsClosed bool
}

// member is the state kept per node, from memberlist events.
type member struct {
	node  memberlist.Node // a copy: Name, Addr and Port are used for sends
	meta  nodeMeta
	state string // MemberAlive, MemberDead or MemberLeft; suspect is derived
	since time.Time
	// leftAt is when a leave message for the node arrived while
	// memberlist still lists it as alive; zero otherwise. The node shows
	// as left until memberlist confirms (state becomes MemberLeft), the
	// node is heard from again, or leaveConfirm passes.
	leftAt time.Time
}

// shownState is the state [Cluster.Members] shows for m.
func (m *member) shownState() string {
	if m.state == MemberAlive && !m.leftAt.IsZero() {
		return MemberLeft
	}
	return m.state
}

// errRunTwice is returned by a second call to Run.
var errRunTwice = errors.New("cluster: Run called twice")

// New validates cfg, binds the gossip sockets and starts memberlist, but
// joins nobody: [Cluster.Run] does that. Until Run is called the node
// answers peers but sends nothing of its own. Metrics are registered with
// reg, which may be nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	meta, err := encodeMeta(nodeMeta{Site: cfg.Site, ConfigHash: cfg.ConfigHash, Features: ourFeatures})
	if err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	c := &Cluster{
		cfg:       cfg,
		log:       logger,
		changed:   make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		seq:       uint64(time.Now().UnixNano()),
		table:     newTable(cfg.Staleness, cfg.Heartbeat/2),
		replies:   make(map[string]map[string]bool),
		wants:     make(map[string]map[string]bool),
		asked:     make(map[string]time.Time),
		members:   make(map[string]*member),
		inflight:  make(map[string]bool),
		rejectLog: newLogLimiter(rejectLogEvery),
	}
	c.hash.Store(&cfg.ConfigHash)
	c.meta.Store(&meta)
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(c.alive.Load()) },
		RetransmitMult: retransmitMult,
	}
	if c.metrics, err = newMetrics(reg, c); err != nil {
		return nil, fmt.Errorf("cluster metrics: %w", err)
	}

	mc := cfg.memberlistConfig()
	if len(cfg.Keys) > 0 {
		keys := make([][]byte, len(cfg.Keys))
		for i, k := range cfg.Keys {
			keys[i] = slices.Clone(k)
		}
		if c.keyring, err = memberlist.NewKeyring(keys[1:], keys[0]); err != nil {
			c.metrics.unregister()
			return nil, fmt.Errorf("cluster keyring: %w", err)
		}
		mc.Keyring = c.keyring
	}
	mc.Delegate = &delegate{c}
	mc.Events = &events{c}
	mc.Logger = newMemberlistLogger(logger, c.unauthenticated)
	tr, err := newTransport(mc.BindAddr, mc.BindPort, mc.Logger)
	if err != nil {
		c.metrics.unregister()
		return nil, fmt.Errorf("start memberlist on %s: %w", cfg.Bind, err)
	}
	mc.Transport = tr
	if cfg.wrapTransport != nil {
		mc.Transport = cfg.wrapTransport(tr)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		c.metrics.unregister()
		return nil, fmt.Errorf("start memberlist on %s: %w", cfg.Bind, err)
	}
	c.ml = ml

	self := c.Addr().String()
	for _, s := range cfg.Seeds {
		if s != self && s != cfg.Bind && s != cfg.Advertise {
			c.seeds = append(c.seeds, s)
		}
	}
	logger.Info("gossip listening", "name", cfg.Name, "site", cfg.Site, "addr", self,
		"encrypted", c.Encrypted(), "keys", c.KeyIDs())
	if c.Insecure() {
		logger.Warn("gossip is not encrypted and not on loopback (cluster.insecure): anyone who reaches the gossip port can join, report health and drain sites", "addr", self)
	}
	return c, nil
}

// Addr returns the address peers reach this node's gossip on: the
// advertised address, or the bound one (with the port picked if Bind's
// port was 0).
func (c *Cluster) Addr() netip.AddrPort {
	return nodeAddr(c.ml.LocalNode())
}

// Run joins the cluster through the seeds (retrying until it succeeds),
// keeps trying to reach failed and departed members and seeds that are
// not members (see reconnectLoop), and sends what is due (see flush)
// until ctx is done. It then
// announces the departure, leaves memberlist (bounded by a second) and
// shuts it down, and returns once every goroutine it started has ended.
// Call it once.
func (c *Cluster) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errRunTwice
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.reconnectLoop(ctx) })
	c.sendLoop(ctx)
	wg.Wait()

	if !c.skipLeave.Load() {
		c.sendLeave()
		if err := c.ml.Leave(leaveTimeout); err != nil {
			c.log.Warn("leave cluster", "err", err)
		}
	}
	err := c.ml.Shutdown()
	c.mu.Lock()
	c.sendsClosed = true // BroadcastDrains and AckDrains start no more sends
	c.mu.Unlock()
	c.sends.Wait()
	if err != nil {
		return fmt.Errorf("shut down memberlist: %w", err)
	}
	c.log.Info("gossip stopped")
	return nil
}

// reconnectLoop is serf's reconnect loop: every RetryInterval it tries
// to join, through memberlist, every seed that is not an alive member's
// address and every member it considers failed (for ReconnectTimeout) or
// left (for LeftTimeout). memberlist alone never probes a member it has
// declared dead, so without this two sides of a partition that outlasted
// its suspicion timeout would stay apart for good. A join is a push/pull:
// both sides exchange their full state (members, reports and drains) at
// once, and each side refutes the other's verdict of its death, so the
// membership is whole again within a round or two of the path healing.
// Each address has at most one attempt in flight; an attempt at a black
// hole ends after memberlist's TCPTimeout.
func (c *Cluster) reconnectLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.RetryInterval)
	defer t.Stop()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inflight = map[string]bool{}
		failing  bool // the seeds were tried and none gave us a peer
	)
	defer wg.Wait()
	for {
		seeds, members := c.reconnectTargets(ctx, time.Now())
		alone := c.alive.Load() <= 1
		if alone && len(seeds) > 0 {
			// Alone: the first join (or a rejoin after every peer went)
			// goes through a few seeds picked at random. memberlist's
			// Join makes a full push/pull with every address it is
			// given, one after the other: with every node of a cluster
			// of 30 listing the 29 others, a cluster starting at once
			// made 870 of them, and a node could spend seconds in its
			// first Join. One live seed hands over the whole membership;
			// the seeds left out are tried on the next rounds if still
			// not members (below).
			if len(seeds) > joinSeeds {
				rand.Shuffle(len(seeds), func(i, j int) { seeds[i], seeds[j] = seeds[j], seeds[i] })
				seeds = seeds[:joinSeeds]
			}
			n, err := c.ml.Join(seeds)
			if err == nil && c.alive.Load() <= 1 {
				// Join reaches memberlist on the seeds and merges their
				// members before returning; still alone means every seed
				// reached was this node under another address.
				err = errors.New("seeds reached, but no other member found")
			}
			switch {
			case err != nil:
				c.metrics.joins.WithLabelValues(joinFailure).Inc()
				if !failing {
					c.log.Warn("join cluster failed, running alone and retrying", "seeds", seeds, "every", c.cfg.RetryInterval, "err", err)
				}
				failing = true
			default:
				c.metrics.joins.WithLabelValues(joinSuccess).Inc()
				c.log.Info("joined cluster", "seeds_reached", n, "members", c.alive.Load())
				failing = false
			}
			seeds = nil
		}
		for _, s := range seeds {
			members = append(members, reconnectTarget{"seed", s})
		}
		for _, tg := range members {
			mu.Lock()
			busy := inflight[tg.addr]
			inflight[tg.addr] = true
			mu.Unlock()
			if busy {
				continue
			}
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(inflight, tg.addr)
					mu.Unlock()
				}()
				if _, err := c.ml.Join([]string{tg.addr}); err != nil {
					c.metrics.reconnects.WithLabelValues(joinFailure).Inc()
					c.log.Debug("reconnect failed", "to", tg.name, "addr", tg.addr, "err", err)
					return
				}
				c.metrics.reconnects.WithLabelValues(joinSuccess).Inc()
				c.log.Info("reconnected", "to", tg.name, "addr", tg.addr)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconnectTarget is an address the reconnect loop tries.
type reconnectTarget struct {
	name string // member name, or "seed"
	addr string
}

// reconnectTargets returns the seeds that are not the address of an
// alive member (a seed given as a host name is resolved for the
// comparison) and the addresses of members failed less than
// ReconnectTimeout or left less than LeftTimeout ago.
func (c *Cluster) reconnectTargets(ctx context.Context, now time.Time) (seeds []string, members []reconnectTarget) {
	alive := map[netip.AddrPort]bool{}
	c.mu.Lock()
	for name, m := range c.members {
		if name == c.cfg.Name {
			continue
		}
		addr := nodeAddr(&m.node)
		switch m.shownState() {
		case MemberAlive:
			alive[addr] = true
		case MemberDead:
			if now.Sub(m.since) < c.cfg.ReconnectTimeout {
				members = append(members, reconnectTarget{name, addr.String()})
			}
		case MemberLeft:
			if now.Sub(m.since) < c.cfg.LeftTimeout {
				members = append(members, reconnectTarget{name, addr.String()})
			}
		}
	}
	c.mu.Unlock()
	for _, s := range c.seeds {
		if !alive[resolveSeed(ctx, s)] {
			seeds = append(seeds, s)
		}
	}
	slices.SortFunc(members, func(a, b reconnectTarget) int { return strings.Compare(a.addr, b.addr) })
	return seeds, members
}

// resolveSeed returns the address a "host:port" seed stands for, or the
// zero AddrPort if it cannot be resolved within a second.
func resolveSeed(ctx context.Context, seed string) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(seed); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return netip.AddrPort{}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(p))
}

// sendLoop sends what the outbox holds whenever woken (Announce, a
// peer's request, a report to fetch, a peer joined), and on every
// heartbeat expires old state and sends the local report to the peers of
// an earlier version.
func (c *Cluster) sendLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		tick := false
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.quiet = true
			c.mu.Unlock()
			return
		case <-c.wake:
		case <-t.C:
			c.expire(time.Now())
			tick = true
		}
		c.flush(time.Now(), tick)
	}
}

// poke wakes sendLoop. It never blocks.
func (c *Cluster) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Announce makes r this node's report: it sets Origin and Site from the
// Config (and ConfigHash if r has none), Seq and Time, and sends it to
// every alive peer at once, so a change reaches every node in one hop.
// Gossiped heartbeats then keep it fresh (see [Cluster.broadcasts]), a
// peer that missed it fetches it when a heartbeat names its Seq, and
// push/pull carries it. r must not be changed afterwards. Announce does
// not block on the network.
func (c *Cluster) Announce(r health.Report) {
	r.Origin = c.cfg.Name
	r.Site = c.cfg.Site
	if r.ConfigHash == "" {
		r.ConfigHash = c.configHash()
	}
	r.Time = time.Now()
	c.mu.Lock()
	c.seq++
	r.Seq = c.seq
	c.local = &r
	c.announce = true
	c.mu.Unlock()
	c.poke()
}

// nextBeatLocked returns a new heartbeat number: now in milliseconds since
// the Unix epoch, or one more than the last if the clock has not moved
// past it.
func (c *Cluster) nextBeatLocked(now time.Time) uint64 {
	c.beat = max(c.beat+1, uint64(max(now.UnixMilli(), 0)))
	return c.beat
}

// Reports returns the latest report of every other node, sorted by
// origin, with At the local time it last arrived. Reports up to 10 times
// Staleness old are included: the caller judges freshness. The reports
// are shared and must not be modified.
func (c *Cluster) Reports() []health.Received {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.table.received(now)
}

// Changed is signalled (one slot, never blocking the sender) when a
// remote report's content changes or appears or is dropped, and when a
// node joins, leaves, fails or updates its meta. A heartbeat that only
// refreshes a report's At does not signal: consumers re-read on their own
// timer to judge staleness.
func (c *Cluster) Changed() <-chan struct{} {
	return c.changed
}

// Members returns every node this node knows, itself included, sorted by
// name. Failed nodes are kept (as dead) for ReconnectTimeout and nodes
// that left for LeftTimeout, the time they are retried for: operators see
// them, and drain acknowledgements count the failed ones as not reached.
func (c *Cluster) Members() []Member {
	now := time.Now()
	ours := c.configHash()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for name, m := range c.members {
		state := m.shownState()
		if state == MemberAlive && name != c.cfg.Name {
			if r, ok := c.table.reports[name]; ok && now.Sub(r.At) > c.cfg.Staleness {
				state = MemberSuspect
			}
		}
		out = append(out, Member{
			Name:       name,
			Site:       m.meta.Site,
			Addr:       nodeAddr(&m.node),
			State:      state,
			ConfigHash: m.meta.ConfigHash,
			SameConfig: m.meta.ConfigHash == ours,
		})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// flush sends what the outbox holds: after an Announce the local report
// to every alive peer; the reports peers asked for; the requests for
// reports this node lacks; and, on a heartbeat tick, the local report to
// every alive peer of an earlier version, which has no other way to keep
// it fresh.
func (c *Cluster) flush(now time.Time, tick bool) {
	type out struct {
		to  memberlist.Node
		msg []byte
	}
	var outs []out
	c.mu.Lock()
	var own []byte
	ownMsg := func() []byte {
		if own == nil && c.local != nil {
			own = encodeReport(*c.local, c.nextBeatLocked(now), 0)
		}
		return own
	}
	alive := func(name string) (memberlist.Node, bool) {
		m, ok := c.members[name]
		if !ok || name == c.cfg.Name || m.shownState() != MemberAlive {
			return memberlist.Node{}, false
		}
		return m.node, true
	}
	if c.announce || tick {
		for name, m := range c.members {
			node, ok := alive(name)
			if ok && (c.announce || m.meta.Features&featureBeats == 0) && ownMsg() != nil {
				outs = append(outs, out{node, own})
			}
		}
		c.announce = false
	}
	for name, origins := range c.replies {
		node, ok := alive(name)
		if !ok {
			continue
		}
		for origin := range origins {
			if origin == c.cfg.Name {
				if ownMsg() != nil {
					outs = append(outs, out{node, own})
				}
			} else if r, ok := c.table.reports[origin]; ok {
				outs = append(outs, out{node, encodeReport(r.Report, r.beat, now.Sub(r.At))})
			}
		}
	}
	clear(c.replies)
	for name, origins := range c.wants {
		if node, ok := alive(name); ok {
			list := slices.Sorted(maps.Keys(origins))
			c.metrics.requested.Add(float64(len(list)))
			outs = append(outs, out{node, encodeWant(c.cfg.Name, list)})
		}
	}
	clear(c.wants)
	c.mu.Unlock()
	for i := range outs {
		c.send(&outs[i].to, outs[i].msg)
	}
}

// broadcasts is what memberlist piggybacks on its gossip (every
// Heartbeat/2, to GossipNodes random peers) and on its probes: the
// queued leave and drain messages first, then, in the room left, a
// heartbeat digest (see digest). memberlist sends these to a few peers per
// round whatever the size of the cluster, and each peer relays what it
// learnt in its own next rounds, so every node hears every origin's
// heartbeat within a few rounds while sending a bounded number of packets.
func (c *Cluster) broadcasts(overhead, limit int) [][]byte {
	msgs := c.queue.GetBroadcasts(overhead, limit)
	for _, m := range msgs {
		limit -= len(m) + overhead
	}
	if d := c.digest(time.Now(), limit-overhead); d != nil {
		msgs = append(msgs, d)
	}
	return msgs
}

// digest returns a kindBeats frame of at most size bytes: a new heartbeat
// of ours (once we have a report, until Run ends), then, for every origin whose report
// we hold with a heartbeat fresher than Staleness, that heartbeat and its
// age. Entries that do not fit are left out; the table is walked in Go's
// random map order, so a digest cut short names a different part each
// time. nil when there is nothing to say or no room.
func (c *Cluster) digest(now time.Time, size int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := beatsHeader(c.cfg.Name)
	n := 0
	add := func(e beatEntry) {
		if len(b)+beatLen(e) <= size {
			b = appendBeat(b, e)
			n++
		}
	}
	if c.local != nil && !c.quiet {
		add(beatEntry{origin: c.cfg.Name, seq: c.local.Seq, beat: c.nextBeatLocked(now)})
	}
	for origin, r := range c.table.reports {
		if age := now.Sub(r.At); r.beat != 0 && age < c.cfg.Staleness {
			add(beatEntry{origin: origin, seq: r.Seq, beat: r.beat, age: max(age, 0)})
		}
	}
	if n == 0 {
		return nil
	}
	return b
}

// sendLeave tells every alive peer, directly and through gossip, that we
// are leaving, so they drop our report at once and show us as left.
func (c *Cluster) sendLeave() {
	c.mu.Lock()
	msg := encodeLeave(c.cfg.Name, c.seq)
	peers := c.peersLocked()
	c.mu.Unlock()
	c.queue.QueueBroadcast(&broadcast{name: "node/" + c.cfg.Name, msg: msg})
	for i := range peers {
		c.send(&peers[i], msg)
	}
}

// peersLocked returns copies of the alive members other than us.
func (c *Cluster) peersLocked() []memberlist.Node {
	peers := make([]memberlist.Node, 0, len(c.members))
	for name, m := range c.members {
		if name != c.cfg.Name && m.shownState() == MemberAlive {
			peers = append(peers, m.node)
		}
	}
	return peers
}

// send delivers msg to one peer: over UDP if it fits a packet, else over
// TCP on a goroutine of its own, at most one per peer at a time, so a
// peer that does not answer delays nobody else.
func (c *Cluster) send(to *memberlist.Node, msg []byte) {
	if len(msg) <= maxPacket {
		if err := c.ml.SendBestEffort(to, msg); err != nil {
			c.log.Debug("send to peer", "peer", to.Name, "err", err)
		}
		return
	}
	c.mu.Lock()
	busy := c.inflight[to.Name]
	c.inflight[to.Name] = true
	c.mu.Unlock()
	if busy {
		return
	}
	c.sends.Go(func() {
		if err := c.ml.SendReliable(to, msg); err != nil {
			c.log.Debug("send to peer over tcp", "peer", to.Name, "err", err)
		}
		c.mu.Lock()
		delete(c.inflight, to.Name)
		c.mu.Unlock()
	})
}

// receive handles one message from a peer.
func (c *Cluster) receive(frame []byte) {
	if err := c.apply(frame, time.Now()); err != nil {
		c.badMessage("message", len(frame), err)
	}
}

// mergeState handles a peer's full state from push/pull: every frame in
// it goes through the same apply as the messages.
func (c *Cluster) mergeState(buf []byte) {
	now := time.Now()
	k, body, err := splitKind(buf)
	if err == nil && k != kindState {
		err = fmt.Errorf("push/pull state of kind %v", k)
	}
	if err == nil {
		err = splitState(body, func(frame []byte) error { return c.apply(frame, now) })
	}
	if err != nil {
		c.badMessage("state", len(buf), err)
	}
}

func (c *Cluster) badMessage(via string, size int, err error) {
	c.metrics.bad.Inc()
	c.log.Debug("bad gossip message dropped", "via", via, "bytes", size, "err", err)
}

// apply is the single entry point for every frame, whether it came as a
// message or inside a push/pull state. It decodes by kind and hands the
// result to that kind's apply function.
func (c *Cluster) apply(frame []byte, now time.Time) error {
	k, body, err := splitKind(frame)
	if err != nil {
		return err
	}
	switch k {
	case kindReport:
		m, err := decodeReport(body)
		if err != nil {
			return err
		}
		c.applyReport(m, now)
	case kindLeave:
		m, err := decodeLeave(body)
		if err != nil {
			return err
		}
		c.applyLeave(m, now)
	case kindDrains:
		m, err := decodeDrains(body)
		if err != nil {
			return err
		}
		return c.applyDrains(m, now)
	case kindDrainAck:
		m, err := decodeDrainAck(body)
		if err != nil {
			return err
		}
		c.applyDrainAck(m)
	case kindBeats:
		m, err := decodeBeats(body)
		if err != nil {
			return err
		}
		c.applyBeats(m, now)
	case kindWant:
		m, err := decodeWant(body)
		if err != nil {
			return err
		}
		c.applyWant(m)
	default:
		return fmt.Errorf("unexpected message kind %v", k)
	}
	return nil
}

func (c *Cluster) applyReport(m reportMsg, now time.Time) {
	c.metrics.received.Inc()
	r := m.report
	if r.Origin == c.cfg.Name {
		return // our own, back from a peer's push/pull
	}
	switch {
	case c.seqAhead(r.Seq, now):
		c.reject(rejReport, reasonSeqAhead, "origin", r.Origin, "seq", r.Seq)
		return
	case r.Time.After(now.Add(c.cfg.MaxSkew)):
		c.reject(rejReport, reasonTimeAhead, "origin", r.Origin, "time", r.Time, "ahead", r.Time.Sub(now).Round(time.Second))
		return
	case c.beatAhead(m.beat, now):
		c.reject(rejReport, reasonTimeAhead, "origin", r.Origin, "beat", m.beat)
		return
	}
	c.mu.Lock()
	prev, had := c.table.reports[r.Origin]
	g, wasGone := c.table.gone[r.Origin]
	out := c.table.apply(r, m.beat, now.Add(-m.age), now)
	// A report heard after a leave message for its origin says the leave
	// was false (the table lets it through only then): the node is back.
	contradicted := wasGone && g.soft && out != ignored
	if contradicted {
		if mb, ok := c.members[r.Origin]; ok {
			mb.leftAt = time.Time{}
		}
	}
	c.mu.Unlock()
	if contradicted {
		c.reject(rejLeave, reasonContradicted, "origin", r.Origin, "left_at", g.at)
	}
	// A report that had gone stale counts again once refreshed: the
	// consumer merges on signals and on its own expiry timer only, so it
	// must hear of a revival as of a change.
	revived := had && out != ignored && now.Sub(prev.At) >= c.cfg.Staleness
	if out != changed {
		if revived {
			c.log.Debug("report fresh again", "origin", r.Origin, "site", r.Site)
			c.signal()
		}
		return
	}
	c.log.Debug("report changed", "origin", r.Origin, "site", r.Site, "seq", r.Seq, "targets", len(r.Targets), "ready", r.Ready)
	if ours := c.configHash(); r.ConfigHash != ours && (!had || prev.ConfigHash != r.ConfigHash) {
		c.log.Warn("report from a node with another config", "origin", r.Origin, "config_hash", r.ConfigHash, "ours", ours)
	}
	c.signal()
}

// applyBeats takes a heartbeat digest. Each entry is a member's word
// about an origin, so it is bounded like a report: a Seq or heartbeat
// number further ahead of our clock than MaxSkew is refused, and one about
// an origin that is neither held nor a member known to memberlist does
// nothing (a digest cannot introduce a node). An entry older than
// Staleness is old news and does nothing too. Otherwise it refreshes the report held with that
// Seq (see held.refresh: a heartbeat counts once, so relays cannot keep a
// silent origin fresh), or, when it shows a report this node lacks, the
// report is asked for from the digest's sender (or from the origin, if the
// sender is not an alive member), at most once per origin per Heartbeat.
func (c *Cluster) applyBeats(m wireBeats, now time.Time) {
	c.metrics.beats.Inc()
	revived, ask := false, false
	c.mu.Lock()
	for _, e := range m.entries {
		if e.origin == c.cfg.Name {
			continue
		}
		switch {
		case c.seqAhead(e.seq, now):
			c.reject(rejBeat, reasonSeqAhead, "origin", e.origin, "from", m.from, "seq", e.seq)
			continue
		case c.beatAhead(e.beat, now):
			c.reject(rejBeat, reasonTimeAhead, "origin", e.origin, "from", m.from, "beat", e.beat)
			continue
		case e.age >= c.cfg.Staleness:
			continue
		}
		switch c.table.beat(e.origin, e.seq, e.beat, now.Add(-e.age), now) {
		case beatRevived:
			revived = true
		case beatMissing:
			ask = c.wantLocked(m.from, e.origin, now) || ask
		case beatUnknown:
			// An origin memberlist has not listed yet does nothing:
			// during a join the digests naming a newcomer often arrive
			// before memberlist's news of it, and a digest alone can
			// neither introduce a node nor say anything about it.
			if _, ok := c.members[e.origin]; ok {
				ask = c.wantLocked(m.from, e.origin, now) || ask
			}
		}
	}
	c.mu.Unlock()
	if revived {
		// As in applyReport: the consumer must hear that a stale report
		// counts again.
		c.signal()
	}
	if ask {
		c.poke()
	}
}

// wantLocked queues a request for origin's report to the peer from, or to
// the origin itself if from is not an alive member, unless one was queued
// less than a Heartbeat ago. It reports whether it queued one.
func (c *Cluster) wantLocked(from, origin string, now time.Time) bool {
	if last, ok := c.asked[origin]; ok && now.Sub(last) < c.cfg.Heartbeat {
		return false
	}
	peer := ""
	for _, p := range []string{from, origin} {
		if m, ok := c.members[p]; ok && p != c.cfg.Name && m.shownState() == MemberAlive {
			peer = p
			break
		}
	}
	if peer == "" {
		return false
	}
	c.asked[origin] = now
	if c.wants[peer] == nil {
		c.wants[peer] = map[string]bool{}
	}
	c.wants[peer][origin] = true
	return true
}

// applyWant takes a peer's request for reports: the ones this node holds
// (its own included) are queued for flush to send back. The asker must be
// a member memberlist knows; the reply goes to it only while it is alive.
func (c *Cluster) applyWant(m wireWant) {
	if m.From == c.cfg.Name {
		return
	}
	c.mu.Lock()
	mb, known := c.members[m.From]
	queued := false
	if known && mb.shownState() == MemberAlive {
		for _, origin := range m.Origins {
			_, held := c.table.reports[origin]
			if !held && !(origin == c.cfg.Name && c.local != nil) {
				continue
			}
			if c.replies[m.From] == nil {
				c.replies[m.From] = map[string]bool{}
			}
			c.replies[m.From][origin] = true
			queued = true
		}
	}
	c.mu.Unlock()
	if !known {
		c.reject(rejWant, reasonUnknownSender, "from", m.From)
	}
	if queued {
		c.poke()
	}
}

// applyLeave takes a node's goodbye. Any member could send one in another
// node's name (cluster messages do not say who sent them), so a leave is
// provisional: it drops the report at once and shows the node as left,
// but a report from the node heard after it, or memberlist still listing
// the node as alive leaveConfirm later, undoes it (see doc.go).
func (c *Cluster) applyLeave(m wireLeave, now time.Time) {
	if m.Origin == c.cfg.Name {
		return
	}
	if c.seqAhead(m.Seq, now) {
		c.reject(rejLeave, reasonSeqAhead, "origin", m.Origin, "seq", m.Seq)
		return
	}
	c.mu.Lock()
	if cur, ok := c.table.reports[m.Origin]; ok && cur.Seq > m.Seq {
		c.mu.Unlock()
		return // from an earlier incarnation than the report we hold
	}
	c.table.leave(m.Origin, m.Seq, now)
	known := false
	if mb, ok := c.members[m.Origin]; ok {
		known = mb.shownState() != MemberLeft
		switch mb.state {
		case MemberAlive:
			if mb.leftAt.IsZero() {
				mb.leftAt = now
			}
		case MemberDead:
			mb.state, mb.since = MemberLeft, now
		}
	}
	c.mu.Unlock()
	if known {
		c.log.Info("member leaving", "name", m.Origin)
	}
	c.signal()
}

// expire drops reports and departed members that are too old, and
// undoes leaves that memberlist did not confirm.
func (c *Cluster) expire(now time.Time) {
	c.mu.Lock()
	dropped := c.table.expire(now)
	for origin, at := range c.asked {
		if now.Sub(at) > c.cfg.Heartbeat {
			delete(c.asked, origin)
		}
	}
	var unconfirmed []string
	for name, m := range c.members {
		if (m.state == MemberDead && now.Sub(m.since) > c.cfg.ReconnectTimeout) ||
			(m.state == MemberLeft && now.Sub(m.since) > c.cfg.LeftTimeout) {
			delete(c.members, name)
		}
		if m.state == MemberAlive && !m.leftAt.IsZero() && now.Sub(m.leftAt) > leaveConfirm {
			m.leftAt = time.Time{}
			c.table.rejoined(name)
			unconfirmed = append(unconfirmed, name)
		}
	}
	c.mu.Unlock()
	for _, name := range unconfirmed {
		c.reject(rejLeave, reasonUnconfirmed, "origin", name, "after", leaveConfirm)
	}
	if len(unconfirmed) > 0 {
		c.signal()
	}
	for _, origin := range dropped {
		c.log.Info("report expired", "origin", origin, "after", c.table.dropAfter)
	}
	if len(dropped) > 0 {
		c.signal()
	}
}

// localState is our side of a push/pull: our report and every report we
// hold, each with its age, and every drain record, as one kindState
// message.
func (c *Cluster) localState(now time.Time) []byte {
	var drains []byte
	if c.cfg.Drains != nil {
		if recs := c.cfg.Drains.Records(); len(recs) > 0 {
			drains = encodeDrains(c.cfg.Name, recs)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	state := []byte{byte(kindState)}
	if c.local != nil && !c.quiet {
		state = appendStateFrame(state, encodeReport(*c.local, c.nextBeatLocked(now), 0))
	}
	for _, r := range c.table.reports {
		if age := now.Sub(r.At); age <= c.table.dropAfter {
			state = appendStateFrame(state, encodeReport(r.Report, r.beat, age))
		}
	}
	if drains != nil {
		state = appendStateFrame(state, drains)
	}
	return state
}

// memberEvent records a memberlist event. state is MemberAlive for joins
// and updates, MemberDead for leaves (MemberLeft is kept if the node said
// goodbye first).
func (c *Cluster) memberEvent(n *memberlist.Node, state string) {
	now := time.Now()
	meta, metaErr := decodeMeta(n.Meta)
	node := memberlist.Node{Name: n.Name, Addr: slices.Clone(n.Addr), Port: n.Port}

	c.mu.Lock()
	m, known := c.members[n.Name]
	if !known {
		m = &member{}
		c.members[n.Name] = m
	}
	prev := *m
	m.node, m.meta = node, meta
	if state == MemberDead && (prev.state == MemberLeft || !prev.leftAt.IsZero()) {
		state = MemberLeft // memberlist confirms the node's leave
	}
	if state == MemberAlive && prev.state != MemberAlive {
		m.leftAt = time.Time{} // back after a departure
	}
	if state != MemberAlive {
		m.leftAt = time.Time{}
	}
	if !known || state != prev.state {
		m.since = now
	}
	m.state = state
	switch state {
	case MemberAlive:
		if !known || prev.state != MemberAlive {
			c.table.rejoined(n.Name)
		}
	default:
		c.table.dropDeparted(n.Name, now)
	}
	c.countAliveLocked()
	c.mu.Unlock()

	self := n.Name == c.cfg.Name
	if metaErr != nil && !self {
		c.metrics.bad.Inc()
		c.log.Debug("bad node meta", "name", n.Name, "err", metaErr)
	}
	if !self {
		addr := nodeAddr(&node)
		switch {
		case state == MemberAlive && (!known || prev.state != MemberAlive):
			c.log.Info("member joined", "name", n.Name, "site", meta.Site, "addr", addr)
		case state == MemberDead && prev.state != MemberDead:
			c.log.Warn("member failed", "name", n.Name, "site", meta.Site, "addr", addr)
		case state == MemberLeft && prev.state != MemberLeft:
			c.log.Info("member left", "name", n.Name, "site", meta.Site, "addr", addr)
		}
		if ours := c.configHash(); meta.ConfigHash != ours && (!known || prev.meta.ConfigHash != meta.ConfigHash) && state == MemberAlive {
			c.log.Warn("member has another config", "name", n.Name, "config_hash", meta.ConfigHash, "ours", ours)
		}
	}
	if state == MemberAlive && !self && (!known || prev.state != MemberAlive) {
		// Greet the newcomer with our report rather than make it wait for
		// a heartbeat to name it.
		c.mu.Lock()
		if c.replies[n.Name] == nil {
			c.replies[n.Name] = map[string]bool{}
		}
		c.replies[n.Name][c.cfg.Name] = true
		c.mu.Unlock()
		c.poke()
	}
	c.signal()
}

func (c *Cluster) countAliveLocked() {
	n := 0
	for _, m := range c.members {
		if m.state == MemberAlive {
			n++
		}
	}
	c.alive.Store(int32(n))
}

func (c *Cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// nodeAddr returns a memberlist node's address as a netip.AddrPort.
func nodeAddr(n *memberlist.Node) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(ip.Unmap(), n.Port)
}

// broadcast is a message queued for gossip, named so that a newer message
// about the same subject replaces a queued older one.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	nb, ok := other.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// configHash returns this node's current config hash.
func (c *Cluster) configHash() string { return *c.hash.Load() }

// SetConfigHash records that this node now serves service definitions with
// hash h (after a reload): peers see it in the node meta, and Members and
// the mismatch metric compare against it. Safe for concurrent use.
func (c *Cluster) SetConfigHash(h string) error {
	if h == c.configHash() {
		return nil
	}
	meta, err := encodeMeta(nodeMeta{Site: c.cfg.Site, ConfigHash: h, Features: ourFeatures})
	if err != nil {
		return err
	}
	c.hash.Store(&h)
	c.meta.Store(&meta)
	c.log.Info("config hash changed", "config_hash", h)
	return c.ml.UpdateNode(time.Second)
}
