package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultFirstRoundBound is the [CheckerConfig.FirstRoundBound] of the
// zero value.
const DefaultFirstRoundBound = 3 * time.Second

// Target is one endpoint the Checker probes. Its timing and thresholds
// have no defaults here: they come with the target (the services file
// owns the user-facing defaults), and a zero value is a mistake that
// [ValidateTargets] reports.
type Target struct {
	// ID names the endpoint the same way on every node (for example
	// "service/site/addr"); it is the key of [Snapshot] and [Report].
	ID   string
	Addr netip.AddrPort
	// Kind is the probe kind for metrics labels: "http", "https" or "tcp".
	Kind  string
	Probe Probe
	// Interval is the time between probes; it must be positive. Probes
	// are spread by ±10% so nodes do not probe in lockstep.
	Interval time.Duration
	// Timeout bounds each probe; it must be positive and must not exceed
	// Interval.
	Timeout time.Duration
	// Rise is the number of consecutive successes that take a Down target
	// Up; at least 1.
	Rise int
	// Fall is the number of consecutive failures that take a target Down;
	// at least 1.
	Fall int
	// Key says which targets share one probe: targets with the same Addr,
	// Kind, Interval, Timeout, Remote and a non-empty Key are probed once
	// per interval, and the result goes to each of them, which keeps its
	// own state, thresholds, metrics and ID. Key must therefore name
	// everything that makes Probe behave differently (for HTTP: scheme,
	// method, path, host, expected status and body); the Probe of the
	// first such target is used. An empty Key shares nothing.
	Key string
	// Remote marks an endpoint outside this node's own site, reached over
	// a wide-area path: its probes get a path allowance on top of
	// Timeout, derived from the round trip measured to it (see the
	// package documentation, "Probes across sites").
	Remote bool
}

// validate checks a target.
func (t Target) validate() error {
	var errs []error
	if t.ID == "" {
		errs = append(errs, errors.New("empty ID"))
	}
	if t.Probe == nil {
		errs = append(errs, errors.New("no probe"))
	}
	switch {
	case t.Interval < 0:
		errs = append(errs, fmt.Errorf("negative interval %s", t.Interval))
	case t.Interval == 0:
		errs = append(errs, errors.New("no interval"))
	}
	switch {
	case t.Timeout < 0:
		errs = append(errs, fmt.Errorf("negative timeout %s", t.Timeout))
	case t.Timeout == 0:
		errs = append(errs, errors.New("no timeout"))
	case t.Interval > 0 && t.Timeout > t.Interval:
		errs = append(errs, fmt.Errorf("timeout %s exceeds interval %s", t.Timeout, t.Interval))
	}
	switch {
	case t.Rise < 0:
		errs = append(errs, fmt.Errorf("negative rise %d", t.Rise))
	case t.Rise == 0:
		errs = append(errs, errors.New("no rise"))
	}
	switch {
	case t.Fall < 0:
		errs = append(errs, fmt.Errorf("negative fall %d", t.Fall))
	case t.Fall == 0:
		errs = append(errs, errors.New("no fall"))
	}
	return errors.Join(errs...)
}

// ValidateTargets reports every invalid or duplicate target, by the rules
// [NewChecker] and [Checker.Update] apply, without starting anything.
func ValidateTargets(targets []Target) error {
	if _, err := prepare(targets); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}

// prepare validates targets. It returns the valid ones, in order, and an
// error for each invalid or duplicate one.
func prepare(targets []Target) ([]Target, error) {
	var (
		out  = make([]Target, 0, len(targets))
		seen = make(map[string]bool, len(targets))
		errs []error
	)
	for i, t := range targets {
		if err := t.validate(); err != nil {
			errs = append(errs, fmt.Errorf("targets[%d] %q: %w", i, t.ID, err))
			continue
		}
		if seen[t.ID] {
			errs = append(errs, fmt.Errorf("targets[%d] %q: duplicate ID", i, t.ID))
			continue
		}
		seen[t.ID] = true
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// CheckerConfig configures a [Checker]. The zero value is usable.
type CheckerConfig struct {
	// FirstRoundBound is how long after Run starts the node counts as ready
	// even if some targets are still Unknown (an endpoint that hangs with
	// Fall 3 and a long timeout should not keep a node out of service).
	// Zero means DefaultFirstRoundBound.
	FirstRoundBound time.Duration

	// newRing makes the event loop's io_uring (see loop); nil means
	// newURing. Tests make the loop do without one, or break it.
	newRing ringMaker
}

// Checker probes targets and publishes what it finds as an immutable
// [Snapshot].
//
// Targets that share a probe (see [Target].Key) form one group, and a
// group is what the Checker schedules: one probe per interval, whose
// result goes to each member target's own state machine. An endpoint
// shared by several services thus costs one probe. One scheduler
// goroutine keeps the groups in a heap ordered by when each is due and
// starts each probe as it falls due, on the event loop (see loop) when it
// is a plain HTTP probe with a kept connection on Linux, and otherwise on
// a goroutine of its own (at most maxOwn at once), so idle targets cost
// no goroutine, and a group has at most one probe in flight. Probes due
// within a few milliseconds of each other start together (see spread),
// so that the Checker wakes up tens of times a second, not once per
// probe. A group's HTTP probe keeps its connection in the group (see
// NewHTTPProbe), which the Checker closes when the group goes. Probe results
// that change a target are queued for one flusher goroutine, which builds
// a new Snapshot (copy-on-write) from everything queued since its last
// one: bursts (the first round, a site going dark) collapse into a few
// snapshots instead of one copy of the whole map per target. A Snapshot
// is also built when the first round completes and when
// [Checker.Update] changes the set of targets. Readers load the current
// Snapshot with one atomic load and are told about new ones through
// [Checker.Changed].
//
// All methods are safe for concurrent use.
type Checker struct {
	bound   time.Duration
	logger  *slog.Logger
	metrics *metrics
	local   *localLog
	snap    atomic.Pointer[Snapshot]
	changed chan struct{}
	sched   scheduler
	// queued is signalled (without blocking) when pending gains changes.
	queued chan struct{}

	wg sync.WaitGroup

	// own paces the probes that run on goroutines of their own (see
	// maxOwn).
	own ownProbes
	// loop runs probes on kept plain-HTTP connections (see loop); nil
	// until the first such connection is handed over, and on other
	// platforms. Set under mu.
	loop atomic.Pointer[loop]

	// pendMu guards pending, the probe results not yet in a snapshot.
	// It is not mu: a probe that queues a change (on the event loop,
	// which runs thousands of probes) must not wait while the flusher
	// copies the whole status map under mu. Lock order: mu, then pendMu.
	pendMu  sync.Mutex
	pending []change

	// mu serialises snapshot writers and guards the fields below.
	mu       sync.Mutex
	trackers map[string]*tracker
	groups   map[groupKey]*group
	runCtx   context.Context // set by Run; nil before
	stopped  bool            // Run is returning: start no more probes
	// noLoop says that the event loop could not be made: probes keep
	// running on goroutines of their own.
	noLoop  bool
	newRing ringMaker // see CheckerConfig
}

// tracker is one target's state: its thresholds and its state machine.
// The probe of the group the target belongs to moves it; mu is held for
// that, since an Update may move the target to another group while a
// probe of the old one is still in flight.
type tracker struct {
	id string

	// mu guards the fields below.
	mu       sync.Mutex
	rise     int
	fall     int
	m        machine
	localRun int // consecutive probes that failed because of this node
}

// groupKey identifies one probe: targets with equal keys share it.
type groupKey struct {
	// The timing comes first: every probe reads it (see group).
	interval time.Duration
	timeout  time.Duration
	remote   bool
	addr     netip.AddrPort
	kind     string
	key      string // Target.Key, or a per-target key when that is empty
}

func keyOf(t Target) groupKey {
	k := groupKey{addr: t.Addr, kind: t.Kind, key: t.Key, interval: t.Interval, timeout: t.Timeout, remote: t.Remote}
	if t.Key == "" {
		// A NUL starts no Key the services file builds, so this never
		// meets a shared one.
		k.key = "\x00" + t.ID
	}
	return k
}

// group is one probe and the targets that share it.
//
// The fields that every probe on the event loop reads or writes come
// first, so that they share two cache lines: at 10,000 groups a group is
// touched once per interval, and each line of it is a cache miss.
type group struct {
	// cfg is the current probe and membership; Update swaps it and the
	// next probe uses it.
	cfg atomic.Pointer[groupConfig]
	// run is the Checker's context, the parent of ctx (see stopped).
	run context.Context
	// lc is the connection the loop holds; owned by the loop's goroutine.
	lc *loopConn
	// The group's probe metrics, looked up once.
	duration prometheus.Observer
	failures prometheus.Counter
	// looped says that the event loop holds the group's kept connection,
	// so its next probe is the loop's to run. Set by the probe that hands
	// the connection over, cleared by the loop when it lets it go.
	looped atomic.Bool
	// removed is set when the group is removed, before ctx is
	// cancelled (see stopped).
	removed atomic.Bool

	// The group's place in the scheduler, guarded by scheduler.mu:
	// queued says that it waits there for its next probe, due when (in
	// the scheduler's time), and seq which of its entries in the wheel
	// is that one (see scheduler); expedited is when Expedite last moved
	// its probe forward (0: never).
	queued    bool
	seq       uint32
	due       int64
	expedited int64

	key groupKey

	// ctx is cancelled when the group is removed or the Checker stops;
	// it bounds the group's probes. Set when the group is scheduled,
	// with run.
	ctx    context.Context
	cancel context.CancelFunc
	// path is the round trip measured to the endpoint. Only the group's
	// probe uses it, and a group has one probe at a time.
	path rtt
	// conns holds the connection the probe keeps to the endpoint; the
	// Checker closes it when the group is removed or Run returns.
	conns connSlot
	// trace is what the group's probe (one at a time) reports about its
	// connection, and tctx is ctx carrying it and conns: both are made
	// once, not per probe.
	trace probeTrace
	tctx  context.Context
	// hedge is the group's confirming probe on a new connection (see
	// hedge); only the group's probe uses it.
	hedge hedge
}

type groupConfig struct {
	probe   Probe
	members []*tracker
	// one holds the members of a group of one target, the usual case,
	// so that a probe's result reaches its tracker without visiting
	// another allocation (a cache miss per probe at 10,000 groups).
	one [1]*tracker
}

// NewChecker returns a Checker for targets. It fails if a target is
// invalid (see [ValidateTargets]: no ID, no probe, no timing, a timeout
// longer than its interval, a duplicate ID) or if the metrics cannot be registered with reg. A nil
// logger discards logs; a nil reg registers nothing.
func NewChecker(cfg CheckerConfig, targets []Target, logger *slog.Logger, reg prometheus.Registerer) (*Checker, error) {
	ts, err := prepare(targets)
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	if cfg.FirstRoundBound < 0 {
		return nil, fmt.Errorf("health: negative first round bound %s", cfg.FirstRoundBound)
	}
	if cfg.FirstRoundBound == 0 {
		cfg.FirstRoundBound = DefaultFirstRoundBound
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		bound:    cfg.FirstRoundBound,
		newRing:  cfg.newRing,
		logger:   logger,
		metrics:  m,
		local:    &localLog{logger: logger},
		changed:  make(chan struct{}, 1),
		queued:   make(chan struct{}, 1),
		sched:    newScheduler(),
		trackers: make(map[string]*tracker, len(ts)),
	}
	now := time.Now()
	statuses := make(map[string]Status, len(ts))
	for _, t := range ts {
		c.trackers[t.ID] = &tracker{id: t.ID, rise: t.Rise, fall: t.Fall}
		statuses[t.ID] = Status{State: Unknown, Since: now}
		m.addKind(t.Kind)
	}
	c.groups = groupTargets(ts, c.trackers, nil)
	c.snap.Store(&Snapshot{statuses: statuses, ready: len(ts) == 0})
	return c, nil
}

// groupTargets builds the groups of ts, whose trackers are in trackers.
// Groups whose key is in old are kept (with their schedule and measured
// round trip) and get their new membership.
func groupTargets(ts []Target, trackers map[string]*tracker, old map[groupKey]*group) map[groupKey]*group {
	cfgs := make(map[groupKey]*groupConfig)
	var order []groupKey
	for _, t := range ts {
		k := keyOf(t)
		gc, ok := cfgs[k]
		if !ok {
			gc = &groupConfig{probe: t.Probe}
			gc.members = gc.one[:0]
			cfgs[k] = gc
			order = append(order, k)
		}
		gc.members = append(gc.members, trackers[t.ID])
	}
	out := make(map[groupKey]*group, len(order))
	for _, k := range order {
		g, ok := old[k]
		if !ok {
			g = &group{key: k}
		}
		g.cfg.Store(cfgs[k])
		out[k] = g
	}
	return out
}

// Snapshot returns the current snapshot. It never returns nil.
func (c *Checker) Snapshot() *Snapshot { return c.snap.Load() }

// Expedite starts the next probe of the targets ids that are Up here now,
// rather than at their turn: another node's probes have seen them fail
// ([View.Contested]), and the sooner this node's own probe confirms or
// contradicts that, the sooner the cluster's verdict stands. When a site
// goes dark the first node to notice thus brings every other node's
// probe forward, instead of each waiting up to an interval for its own
// turn. A probe in flight is left alone, and a group's probe is brought
// forward at most once per interval, so a node that keeps seeing an
// endpoint fail that this node sees up costs at most one extra probe
// per interval.
func (c *Checker) Expedite(ids []string) {
	if len(ids) == 0 {
		return
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	c.mu.Lock()
	var groups []*group
	for _, g := range c.groups {
		for _, tr := range g.cfg.Load().members {
			if want[tr.id] {
				groups = append(groups, g)
				break
			}
		}
	}
	c.mu.Unlock()
	now := time.Now()
	for _, g := range groups {
		if hedgeable(g.cfg.Load().members) && c.sched.expedite(g, now, g.key.interval) {
			c.metrics.expedited.Inc()
		}
	}
}

// Changed returns a channel that receives a value after a new snapshot is
// stored. It has room for one value and the Checker never blocks on it,
// so a burst of changes collapses into one signal: on receipt, read
// [Checker.Snapshot].
func (c *Checker) Changed() <-chan struct{} { return c.changed }

// Run probes the targets until ctx is done, then waits for every probe in
// flight to stop (it is cancelled through its context) and returns nil.
// Run may be called only once.
func (c *Checker) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.runCtx != nil {
		c.mu.Unlock()
		return errors.New("health: checker already ran")
	}
	c.runCtx = ctx
	spread := firstSpread(len(c.groups))
	for _, g := range c.groups {
		c.scheduleLocked(g, spread)
	}
	if !c.snap.Load().ready {
		c.wg.Go(func() { c.boundFirstRound(ctx) })
	}
	c.wg.Go(func() { c.flushLoop(ctx) })
	c.mu.Unlock()

	c.sched.run(ctx, func(g *group) {
		if g.looped.Load() {
			c.loop.Load().submit(g)
			return
		}
		c.startOwn(g)
	}, func() {
		if l := c.loop.Load(); l != nil {
			l.kick()
		}
	})
	c.mu.Lock()
	c.stopped = true
	// Closing the kept connections also ends the probes in flight at
	// once; one that puts its connection back after this closes it. The
	// loop closes those it holds.
	for _, g := range c.groups {
		g.conns.close()
	}
	if l := c.loop.Load(); l != nil {
		l.stop()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// Update replaces the targets, typically after a configuration reload.
// Targets whose ID is already tracked keep their state and switch to the
// new settings (probe, interval, thresholds) from their next probe; new
// IDs start Unknown; removed IDs are no longer probed. Invalid targets are
// logged and skipped: validate them with [ValidateTargets] before. Update
// does not wait for anything and is safe to call before, during and after
// Run.
func (c *Checker) Update(targets []Target) {
	ts, err := prepare(targets)
	if err != nil {
		c.logger.Error("invalid targets skipped", "error", err)
	}
	now := time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	trackers := make(map[string]*tracker, len(ts))
	statuses := make(map[string]Status, len(ts))
	changed := false
	for _, t := range ts {
		c.metrics.addKind(t.Kind)
		if tr, ok := c.trackers[t.ID]; ok {
			tr.mu.Lock()
			tr.rise, tr.fall = t.Rise, t.Fall
			tr.mu.Unlock()
			trackers[t.ID] = tr
			statuses[t.ID] = old.statuses[t.ID]
			continue
		}
		trackers[t.ID] = &tracker{id: t.ID, rise: t.Rise, fall: t.Fall}
		statuses[t.ID] = Status{State: Unknown, Since: now}
		changed = true
	}
	for id := range c.trackers {
		if _, ok := trackers[id]; !ok {
			c.metrics.removeTarget(id)
			changed = true
		}
	}
	groups := groupTargets(ts, trackers, c.groups)
	for k, g := range c.groups {
		if _, ok := groups[k]; !ok {
			c.sched.remove(g)
			g.removed.Store(true)
			if g.cancel != nil {
				g.cancel()
			}
			g.conns.close()
			if l := c.loop.Load(); l != nil {
				l.forget(g)
			}
		}
	}
	if c.runCtx != nil {
		added := 0
		for _, g := range groups {
			if g.ctx == nil {
				added++
			}
		}
		spread := firstSpread(added)
		for _, g := range groups {
			if g.ctx == nil {
				c.scheduleLocked(g, spread)
			}
		}
	}
	c.trackers, c.groups = trackers, groups
	if changed {
		c.storeLocked(&Snapshot{statuses: statuses, ready: old.ready || allKnown(statuses)})
	}
}

// firstGap and maxFirstSpread pace the first probes of many groups
// started together (see firstSpread).
const (
	firstGap       = 200 * time.Microsecond
	maxFirstSpread = 2 * time.Second
)

// firstSpread is how long the first probes of n groups started together
// are spread over, at least: firstGap apart on average, at most
// maxFirstSpread. Every first probe makes a new connection, which costs
// this node (and, on loopback, the endpoint) several times a probe on a
// kept one; 10,000 of them in the first quarter interval (125ms) would
// ask for 80,000 connections a second, and the probes that time out in
// that storm would each make another. Spread over 2s they ask for 5,000.
// A few hundred groups are not slowed at all, and the first round still
// ends within the default FirstRoundBound.
func firstSpread(n int) time.Duration {
	return min(time.Duration(n)*firstGap, maxFirstSpread)
}

// scheduleLocked gives g its context and its first probe, somewhere in
// its first quarter interval, or within spread when that is longer, so
// that targets and nodes do not probe in lockstep, unless Run is
// stopping. c.mu must be held and Run must have been called.
func (c *Checker) scheduleLocked(g *group, spread time.Duration) {
	if c.stopped {
		return
	}
	g.ctx, g.cancel = context.WithCancel(c.runCtx)
	g.run = c.runCtx
	g.trace.conns = &g.conns
	g.tctx = withTrace(g.ctx, &g.trace)
	g.duration = c.metrics.probeDuration.WithLabelValues(g.key.kind)
	g.failures = c.metrics.probeFailures.WithLabelValues(g.key.kind)
	first := rand.N(max(g.key.interval/4, spread, 1))
	c.sched.add(g, time.Now().Add(first), min(maxSlack, first/20))
}

// storeLocked publishes s and signals Changed without blocking. c.mu must
// be held, so snapshots are stored in the order they were built.
func (c *Checker) storeLocked(s *Snapshot) {
	c.snap.Store(s)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// maxOwn bounds the probes that run on goroutines of their own at once:
// those that make a new connection (the first probe of each endpoint,
// the first after a failure or a retired connection; HTTPS and TCP
// probes; every probe off Linux) and those of custom probes. The rest
// wait in turn, and a probe's timeout runs from when it starts, not
// from when it was due: a burst of new connections (10,000 endpoints
// starting, or failing over together) is paced by what this node can
// do rather than timing out in a storm of its own making, which would
// make every timed-out probe's next one dial again. A probe that waits
// starts late, never early, and its next one is scheduled from when it
// started. Plain HTTP probes on kept connections do not wait: the event
// loop runs them.
const maxOwn = 256

// ownProbes is the queue of probes waiting for a goroutine of their own.
type ownProbes struct {
	// mu guards the fields below.
	mu      sync.Mutex
	running int
	waiting []*group
	// busy says that probes are waiting: the loop then keeps a
	// connection past its retirement rather than add one more.
	busy atomic.Bool
}

// startOwn runs g's probe on a goroutine of its own now, or when one of
// the maxOwn running ends.
func (c *Checker) startOwn(g *group) {
	o := &c.own
	o.mu.Lock()
	if o.running >= maxOwn {
		o.waiting = append(o.waiting, g)
		o.busy.Store(true)
		o.mu.Unlock()
		return
	}
	o.running++
	o.mu.Unlock()
	c.wg.Go(func() { c.runOwn(g) })
}

// runOwn probes g, then the waiting groups in turn, on this goroutine,
// which holds a slot of maxOwn until none waits.
func (c *Checker) runOwn(g *group) {
	for g != nil {
		if g.ctx.Err() == nil {
			c.probe(g)
		}
		g = c.nextOwn()
	}
}

// tryOwn takes a slot of maxOwn for a hedge, when one is free and no
// probe waits for one: a hedge only speeds up a verdict, so on a node
// that is already making as many new connections as it can, the probe
// goes without and is confirmed Interval/5 later, as an unhedged one is,
// rather than add a connection to the storm that made it late.
func (c *Checker) tryOwn() bool {
	o := &c.own
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running >= maxOwn || len(o.waiting) > 0 {
		return false
	}
	o.running++
	return true
}

// releaseOwn gives back a slot taken by tryOwn: to the next waiting
// probe, which then runs on a goroutine of its own, or to the pool.
func (c *Checker) releaseOwn() {
	if g := c.nextOwn(); g != nil {
		c.wg.Go(func() { c.runOwn(g) })
	}
}

// nextOwn returns the next waiting group, or nil after counting the
// caller's goroutine out.
func (c *Checker) nextOwn() *group {
	o := &c.own
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.waiting) == 0 {
		o.running--
		return nil
	}
	g := o.waiting[0]
	o.waiting[0] = nil
	o.waiting = o.waiting[1:]
	o.busy.Store(len(o.waiting) > 0)
	return g
}

// probe makes one probe of g on this goroutine, hands the result to
// every member target and schedules g's next probe (see finish).
func (c *Checker) probe(g *group) {
	start := time.Now()
	// A probe that finds a kept connection needs no connect.
	timeout, interval := g.timing(!g.conns.kept(start))
	c.probeUntil(g, start, timeout, interval, false)
}

// probeUntil runs g's probe on this goroutine until timeout after start,
// and finishes it. It is also how the event loop retries a probe on a
// new connection (within the loop probe's deadline); loopHedged then says
// that the loop has started the probe's hedge already, which finishes
// both (see loop.hedge).
//
// A probe that has had no answer for half its timeout while a member is
// Up gets its confirmation at once: a second probe, on a new connection,
// alongside it (see hedge). Both results go through the state machines,
// in the order they came, so a hung or black-holed endpoint is Down one
// Timeout after the probe started rather than 2×Timeout, while one lost packet,
// which stalls one connection, is outvoted by the other probe.
func (c *Checker) probeUntil(g *group, start time.Time, timeout, interval time.Duration, loopHedged bool) {
	ctx, k := g.ctx, g.key
	gc := g.cfg.Load()
	hedged := !loopHedged && hedgeable(gc.members)
	if hedged {
		g.hedge.arm(c, g, gc.probe, time.Until(start.Add(timeout/2)))
	}
	trace := &g.trace
	trace.reset()
	trace.wantRTT = k.remote
	results := [2]probeResult{{err: runProbeUntil(g.tctx, gc.probe, k.addr, start.Add(timeout), timeout), start: start}}
	results[0].end = time.Now()
	switch err := results[0].err; {
	case ctx.Err() != nil:
	case err == nil && trace.http != nil:
		c.handOver(g, gc, trace.http)
	case trace.tcp && !loopHedged:
		c.handOverConnect(g, gc)
	}
	if loopHedged {
		g.hedge.deliver(results[0], trace)
		return
	}
	n := 1
	if hedged {
		if r, ok := g.hedge.wait(); ok {
			results[1], n = r, 2
			if r.end.Before(results[0].end) {
				results[0], results[1] = results[1], results[0]
			}
		}
	}
	if ctx.Err() != nil {
		return // stopping or removed: a cancelled probe says nothing about the target
	}
	trace.feed(&g.path)
	if n == 2 {
		g.hedge.trace.feed(&g.path)
	}
	c.finish(g, gc, start, interval, results[:n])
}

// stopped says that g's probes are to stop, as g.ctx.Err() != nil does
// (g was removed, or the Checker is stopping), without reading g's own
// context: the scheduler and the loop ask it of every probe, and at
// 10,000 groups each context is a cache miss, where the Checker's
// context, shared by all, is not. g must have been scheduled.
func (g *group) stopped() bool { return g.removed.Load() || g.run.Err() != nil }

// timing is the timeout and interval of g's probes: its own, or with the
// path allowance of a remote endpoint (see pathTiming) for a probe that
// dials or, when !dials, sends its request on a kept connection.
func (g *group) timing(dials bool) (timeout, interval time.Duration) {
	k := g.key
	if k.remote {
		return pathTiming(k.kind, dials, k.timeout, k.interval, g.path)
	}
	return k.timeout, k.interval
}

// finish hands the results of g's probe that started at start, made with
// gc, to every member target in the order given (the order they came:
// one, or two when the probe was hedged), and schedules g's next probe.
//
// Probes are scheduled from the start of the previous one: every Interval
// (±10%), or every Interval/5 while a result that disagrees with a member
// target's state waits for confirmation (a failure while not Down, a
// success while Down). Fall 2 thus confirms a failure within about a fifth
// of an interval, while a single lost or slow probe is outvoted by the
// next one. A remote group's timeout and interval grow by the path
// allowance (see pathTiming), as computed when the probe started.
func (c *Checker) finish(g *group, gc *groupConfig, start time.Time, interval time.Duration, results []probeResult) {
	var (
		pending bool
		changes []change
	)
	for _, res := range results {
		if c.apply(g, gc, res, &changes) {
			pending = true
		}
	}
	if len(changes) > 0 {
		c.queue(changes)
	}

	delay := interval
	if pending {
		delay = interval / 5
	}
	due, slack := spread(start, delay)
	c.sched.add(g, due, slack)
}

// probeResult is one probe's outcome.
type probeResult struct {
	err        error
	start, end time.Time
	// skipped: a hedge that found no slot free (tryOwn) and was not made.
	skipped bool
}

// apply hands one probe result of g to every member target, appending
// what changed to changes. It reports whether the group should be probed
// again soon: a member waits for confirmation, or the probe could not be
// made because of this node.
func (c *Checker) apply(g *group, gc *groupConfig, res probeResult, changes *[]change) (pending bool) {
	ctx, err, end := g.ctx, res.err, res.end
	if reason, ok := localFault(err); ok {
		// This node could not make the probe: it says nothing about the
		// endpoint, so no state machine moves. After Fall of them in a
		// row (as long as the endpoint would take to be judged down) the
		// node abstains from voting on it.
		c.metrics.localFault(reason)
		c.local.fault(ctx, end, gc.members[0].id, reason, err)
		for _, tr := range gc.members {
			tr.mu.Lock()
			if tr.localRun++; tr.localRun == max(tr.fall, 1) {
				*changes = append(*changes, change{tr: tr, setFault: true, fault: err.Error(), at: end})
			}
			tr.mu.Unlock()
		}
		return true // retried Interval/5 later
	}
	g.duration.Observe(end.Sub(res.start).Seconds())
	if err != nil {
		g.failures.Inc()
	}
	for _, tr := range gc.members {
		tr.mu.Lock()
		abstained := tr.localRun >= max(tr.fall, 1)
		tr.localRun = 0
		prev := tr.m
		tr.m = tr.m.next(err == nil, tr.rise, tr.fall)
		pending = pending || tr.m.pending()
		switch {
		case tr.m.state != prev.state:
			ch := change{tr: tr, moved: true, from: prev.state, to: tr.m.state, at: end}
			if ch.to == Down && err != nil {
				ch.lastError = err.Error()
			}
			*changes = append(*changes, ch)
		case abstained:
			*changes = append(*changes, change{tr: tr, setFault: true, at: end})
		}
		tr.mu.Unlock()
	}
	return pending
}

// hedgeable reports whether a probe of members gets a hedge: whether a
// member is Up, so that a probe left unanswered could take it Down.
func hedgeable(members []*tracker) bool {
	for _, tr := range members {
		tr.mu.Lock()
		up := tr.m.state == Up
		tr.mu.Unlock()
		if up {
			return true
		}
	}
	return false
}

// hedge is the confirming probe that a group's probe starts alongside
// itself when it has had no answer for half its timeout, while a member
// target is Up. It runs on a new connection of its own (an HTTP probe is
// given no connection slot, so it dials and says "Connection: close"),
// with what is left of the first probe's timeout plus the round trips of
// a new connection (see prepare), and its result joins the first probe's.
//
// Why half the timeout: an endpoint that answers at all answers most
// probes well within it, so a probe still waiting then is most likely
// lost, on a stalled connection or to a dead endpoint; a second probe on a
// new connection tells the two apart in the time the first would have
// spent waiting, and a hung or black-holed endpoint is Down at Timeout
// instead of 2×Timeout (and the wait for the confirmation's schedule).
// An endpoint answers the hedge within the half timeout left on a LAN:
// a new connection adds a round trip, well under a millisecond there, and
// a remote endpoint's hedge gets its path allowance on top. Refused connections are not hedged: they
// fail at once, and their confirmation comes Interval/5 later as before.
// The cost is one more connection for a probe slower than half its
// timeout, which a healthy endpoint rarely is; an endpoint that always is
// gets two probes each interval.
//
// The timer's goroutine runs the hedge; the group's probe, which armed
// it, waits for its result before it returns, so the hedge has an owner
// and stops with the group (its context is the group's). A probe on the
// event loop has no timer: the loop starts the hedge itself, on a
// goroutine that then waits for the loop probe's result and finishes
// both (see loop.hedge and Checker.finishHedged).
type hedge struct {
	timer *time.Timer
	done  chan probeResult
	// What the next hedge probes with, set by arm before the timer
	// starts (the timer orders these writes before the hedge's reads).
	probe Probe
	addr  netip.AddrPort
	// budget is how long the hedge may take; timeout is what its timeout
	// error says (see prepare).
	budget, timeout time.Duration
	trace           probeTrace
	ctx             context.Context // the group's, carrying trace (no connection slot)
	// c is the Checker whose slots (maxOwn) the timer's hedge takes.
	c *Checker

	// first is where the event loop's probe, which a hedge started by
	// the loop accompanies, delivers its result, and firstTrace what it
	// measured of the path (see deliver).
	first      chan probeResult
	firstTrace probeTrace
}

// prepare sets what g's next hedge probes with: p, on a new connection.
//
// The hedge starts half a timeout into the first probe, and the endpoint
// gets what is left of that timeout to answer it: both end together, so a
// hung or black-holed endpoint is Down one Timeout after the first probe
// started, not Timeout/2 later. A new connection needs more round trips
// than a kept one, and those come on top: the budget is a dialling
// probe's timeout (with its path allowance, for a remote endpoint) less
// the half already spent. Its timeout error names the dialling probe's
// timeout, what the endpoint was given in all.
func (h *hedge) prepare(g *group, p Probe) {
	k := g.key
	h.probe, h.addr, h.timeout = p, k.addr, k.timeout
	if k.remote {
		h.timeout, _ = pathTiming(k.kind, true, k.timeout, k.interval, g.path)
	}
	h.budget = h.timeout - k.timeout/2
	if h.ctx == nil {
		h.done = make(chan probeResult, 1)
		h.first = make(chan probeResult, 1)
		h.ctx = withTrace(g.ctx, &h.trace)
	}
}

// arm starts the timer of g's hedge: after wait, a probe of g with p,
// if c has a slot free for it then.
func (h *hedge) arm(c *Checker, g *group, p Probe, wait time.Duration) {
	h.prepare(g, p)
	h.c = c
	if h.timer == nil {
		remote := g.key.remote
		h.timer = time.AfterFunc(wait, func() { h.run(remote) })
		return
	}
	h.timer.Reset(wait)
}

// run is the hedge probe itself, on the timer's goroutine, when a slot
// is free for it. The slot is given back before the result is handed
// over, while the probe that armed the hedge (and so the Checker's wait
// group) is still waiting for it.
func (h *hedge) run(remote bool) {
	if !h.c.tryOwn() {
		h.done <- probeResult{skipped: true}
		return
	}
	r := h.do(remote)
	h.c.releaseOwn()
	h.done <- r
}

// do makes the hedge probe on this goroutine.
func (h *hedge) do(remote bool) probeResult {
	h.trace.reset()
	h.trace.wantRTT = remote
	start := time.Now()
	err := runProbeUntil(h.ctx, h.probe, h.addr, start.Add(h.budget), h.timeout)
	return probeResult{err: err, start: start, end: time.Now()}
}

// wait stops the hedge if it has not started, and otherwise waits for its
// result (ok; not when it was skipped for want of a slot).
func (h *hedge) wait() (probeResult, bool) {
	if h.timer.Stop() {
		return probeResult{}, false
	}
	r := <-h.done
	return r, !r.skipped
}

// deliver hands the result of the probe that a hedge started by the loop
// accompanies, with what it measured of the path (tr), to the hedge's
// goroutine. Each such hedge gets exactly one result, so this never
// blocks.
func (h *hedge) deliver(res probeResult, tr *probeTrace) {
	h.firstTrace.reset()
	if tr != nil {
		h.firstTrace.connect, h.firstTrace.connected = tr.connect, tr.connected
		h.firstTrace.srtt, h.firstTrace.rttvar, h.firstTrace.sampled = tr.srtt, tr.rttvar, tr.sampled
	}
	h.first <- res
}

// finishHedged runs the hedge of g's probe that the event loop started
// at start (see loop.hedge), on a new connection, then waits for the
// loop probe's result (deliver), and hands both to the state machines in
// the order they came, as a probe on a goroutine of its own does with
// its hedge.
func (c *Checker) finishHedged(g *group, gc *groupConfig, start time.Time, interval time.Duration) {
	h := &g.hedge
	second := h.do(g.key.remote)
	c.releaseOwn() // taken by loop.hedge
	var first probeResult
	select {
	case first = <-h.first:
	case <-g.ctx.Done():
		return
	}
	if g.ctx.Err() != nil {
		return // stopping or removed: a cancelled probe says nothing about the target
	}
	results := [2]probeResult{first, second}
	if second.end.Before(first.end) {
		results[0], results[1] = second, first
	}
	h.firstTrace.feed(&g.path)
	h.trace.feed(&g.path)
	c.finish(g, gc, start, interval, results[:])
}

// change is what one probe result did to one target at a time: it entered
// state to (moved), or its LocalFault became fault (setFault; "" clears
// it).
type change struct {
	tr        *tracker
	at        time.Time
	moved     bool
	from, to  State
	lastError string
	setFault  bool
	fault     string
}

// queue hands changes to the flusher. It does not wait for a snapshot
// being built.
func (c *Checker) queue(changes []change) {
	c.pendMu.Lock()
	c.pending = append(c.pending, changes...)
	c.pendMu.Unlock()
	select {
	case c.queued <- struct{}{}:
	default:
	}
}

// flushLoop publishes queued changes until ctx is done.
func (c *Checker) flushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.queued:
		}
		c.flush(ctx)
	}
}

// flush publishes every queued change in one new snapshot and logs the
// transitions. Changes to targets removed meanwhile are dropped, so a late
// result cannot resurrect them. A transition makes a fresh Status, which
// clears LocalFault too: a probe reached the endpoint.
func (c *Checker) flush(ctx context.Context) {
	c.mu.Lock()
	c.pendMu.Lock()
	changes := c.pending
	c.pending = nil
	c.pendMu.Unlock()
	old := c.snap.Load()
	var statuses map[string]Status
	applied := changes[:0]
	for _, ch := range changes {
		id := ch.tr.id
		if c.trackers[id] != ch.tr {
			continue
		}
		var st Status
		if statuses != nil {
			st = statuses[id]
		} else {
			st = old.statuses[id]
		}
		switch {
		case ch.moved:
			st = Status{State: ch.to, Since: ch.at, LastError: ch.lastError}
		case st.LocalFault == ch.fault:
			continue
		default:
			st.LocalFault = ch.fault
		}
		if statuses == nil {
			statuses = maps.Clone(old.statuses)
		}
		statuses[id] = st
		if ch.moved {
			c.metrics.transition(id, ch.to)
		}
		applied = append(applied, ch)
	}
	if statuses == nil {
		c.mu.Unlock()
		return
	}
	firstRound := !old.ready && allKnown(statuses)
	c.storeLocked(&Snapshot{statuses: statuses, ready: old.ready || firstRound})
	c.mu.Unlock()

	for _, ch := range applied {
		if !ch.moved {
			continue
		}
		level := slog.LevelInfo
		if ch.to == Down {
			level = slog.LevelWarn
		}
		attrs := []any{"target", ch.tr.id, "from", ch.from, "to", ch.to}
		if ch.lastError != "" {
			attrs = append(attrs, "error", ch.lastError)
		}
		c.logger.Log(ctx, level, "target state changed", attrs...)
	}
	if firstRound {
		c.logger.Info("first health round complete", "targets", len(statuses))
	}
}

// boundFirstRound marks the snapshot ready when the first round has not
// completed within the bound.
func (c *Checker) boundFirstRound(ctx context.Context) {
	timer := time.NewTimer(c.bound)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return
	case <-timer.C:
	}
	c.mu.Lock()
	old := c.snap.Load()
	if old.ready {
		c.mu.Unlock()
		return
	}
	unknown := 0
	for _, st := range old.statuses {
		if st.State == Unknown {
			unknown++
		}
	}
	c.storeLocked(&Snapshot{statuses: old.statuses, ready: true})
	c.mu.Unlock()
	c.logger.Warn("first health round bounded", "after", c.bound, "unknown", unknown)
}
