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
}

// Checker probes targets, one goroutine per target, and publishes what it
// finds as an immutable [Snapshot].
//
// Each target's goroutine owns that target's state machine; the Checker
// builds a new Snapshot (copy-on-write) only when a target changes state,
// when the first round completes, and when [Checker.Update] changes the
// set of targets. Readers load the current Snapshot with one atomic load
// and are told about new ones through [Checker.Changed].
//
// All methods are safe for concurrent use.
type Checker struct {
	bound   time.Duration
	logger  *slog.Logger
	metrics *metrics
	local   *localLog
	snap    atomic.Pointer[Snapshot]
	changed chan struct{}

	wg sync.WaitGroup

	// mu serialises snapshot writers and guards the fields below.
	mu       sync.Mutex
	trackers map[string]*tracker
	runCtx   context.Context // set by Run; nil before
	stopped  bool            // Run is returning: start no more goroutines
}

// tracker is the Checker's handle on one target's goroutine.
type tracker struct {
	id string
	// target is the current configuration; Update swaps it and the
	// goroutine picks it up at its next probe.
	target atomic.Pointer[Target]
	// cancel stops the goroutine; nil until started. Guarded by
	// Checker.mu.
	cancel context.CancelFunc
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
		logger:   logger,
		metrics:  m,
		local:    &localLog{logger: logger},
		changed:  make(chan struct{}, 1),
		trackers: make(map[string]*tracker, len(ts)),
	}
	now := time.Now()
	statuses := make(map[string]Status, len(ts))
	for _, t := range ts {
		c.trackers[t.ID] = newTracker(t)
		statuses[t.ID] = Status{State: Unknown, Since: now}
		m.addKind(t.Kind)
	}
	c.snap.Store(&Snapshot{statuses: statuses, ready: len(ts) == 0})
	return c, nil
}

func newTracker(t Target) *tracker {
	tr := &tracker{id: t.ID}
	tr.target.Store(&t)
	return tr
}

// Snapshot returns the current snapshot. It never returns nil.
func (c *Checker) Snapshot() *Snapshot { return c.snap.Load() }

// Changed returns a channel that receives a value after a new snapshot is
// stored. It has room for one value and the Checker never blocks on it,
// so a burst of changes collapses into one signal: on receipt, read
// [Checker.Snapshot].
func (c *Checker) Changed() <-chan struct{} { return c.changed }

// Run probes the targets until ctx is done, then waits for every probing
// goroutine to stop (a probe in flight is cancelled through its context)
// and returns nil. Run may be called only once.
func (c *Checker) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.runCtx != nil {
		c.mu.Unlock()
		return errors.New("health: checker already ran")
	}
	c.runCtx = ctx
	for _, tr := range c.trackers {
		c.startLocked(tr)
	}
	if !c.snap.Load().ready {
		c.wg.Go(func() { c.boundFirstRound(ctx) })
	}
	c.mu.Unlock()

	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// Update replaces the targets, typically after a configuration reload.
// Targets whose ID is already tracked keep their state and their goroutine
// and switch to the new settings (probe, interval, thresholds) from their
// next probe; new IDs start Unknown; goroutines of removed IDs are
// stopped. Invalid targets are logged and skipped: validate them with
// [ValidateTargets] before. Update does not wait for anything and is
// safe to call before, during and after Run.
func (c *Checker) Update(targets []Target) {
	ts, err := prepare(targets)
	if err != nil {
		c.logger.Error("invalid targets skipped", "error", err)
	}
	now := time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	next := make(map[string]*tracker, len(ts))
	statuses := make(map[string]Status, len(ts))
	changed := false
	for _, t := range ts {
		c.metrics.addKind(t.Kind)
		if tr, ok := c.trackers[t.ID]; ok {
			tr.target.Store(&t)
			next[t.ID] = tr
			statuses[t.ID] = old.statuses[t.ID]
			continue
		}
		tr := newTracker(t)
		next[t.ID] = tr
		statuses[t.ID] = Status{State: Unknown, Since: now}
		changed = true
		if c.runCtx != nil {
			c.startLocked(tr)
		}
	}
	for id, tr := range c.trackers {
		if _, ok := next[id]; ok {
			continue
		}
		if tr.cancel != nil {
			tr.cancel()
		}
		c.metrics.removeTarget(id)
		changed = true
	}
	c.trackers = next
	if changed {
		c.storeLocked(&Snapshot{statuses: statuses, ready: old.ready || allKnown(statuses)})
	}
}

// startLocked starts tr's goroutine unless Run is stopping. c.mu must be
// held and Run must have been called.
func (c *Checker) startLocked(tr *tracker) {
	if c.stopped {
		return
	}
	ctx, cancel := context.WithCancel(c.runCtx)
	tr.cancel = cancel
	c.wg.Go(func() {
		defer cancel()
		c.track(ctx, tr)
	})
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

// track probes one target until ctx is done.
//
// Probes are scheduled from the start of the previous one: every Interval
// (±10%), or every Interval/5 while a result that disagrees with the state
// waits for confirmation (a failure while not Down, a success while Down).
// Fall 2 thus confirms a failure within about a fifth of an interval,
// while a single lost or slow probe is outvoted by the next one.
func (c *Checker) track(ctx context.Context, tr *tracker) {
	var m machine
	// localRun counts consecutive probes that failed because of this node.
	localRun := 0
	t := tr.target.Load()
	// Start somewhere in the first quarter interval, so that targets and
	// nodes do not probe in lockstep.
	timer := time.NewTimer(rand.N(max(t.Interval/4, 1)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		t = tr.target.Load()
		start := time.Now()
		err := runProbe(ctx, t.Probe, t.Addr, t.Timeout)
		end := time.Now()
		if ctx.Err() != nil {
			return // stopping: a cancelled probe says nothing about the target
		}
		if reason, ok := localFault(err); ok {
			// This node could not make the probe: it says nothing about
			// the endpoint, so the state machine does not move. After
			// Fall of them in a row (as long as the endpoint would take
			// to be judged down) the node abstains from voting on it.
			c.metrics.localFault(reason)
			c.local.fault(ctx, end, tr.id, reason, err)
			if localRun++; localRun == max(t.Fall, 1) {
				c.setLocalFault(ctx, tr, err.Error())
			}
			timer.Reset(max(time.Until(start.Add(jitter(t.Interval/5))), 0))
			continue
		}
		c.metrics.observe(t.Kind, end.Sub(start), err)
		abstained := localRun >= max(t.Fall, 1)
		localRun = 0

		prev := m
		m = m.next(err == nil, t.Rise, t.Fall)
		switch {
		case m.state != prev.state:
			c.transition(ctx, tr, prev.state, m.state, err, end)
		case abstained:
			c.setLocalFault(ctx, tr, "")
		}

		delay := t.Interval
		if m.pending() {
			delay = t.Interval / 5
		}
		timer.Reset(max(time.Until(start.Add(jitter(delay))), 0))
	}
}

// setLocalFault records that tr cannot be probed from this node (fault
// not empty) or can again (fault empty), keeping its state, and publishes
// a new snapshot. Like transition, it does nothing for a removed target.
func (c *Checker) setLocalFault(ctx context.Context, tr *tracker, fault string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() != nil || c.trackers[tr.id] != tr {
		return
	}
	old := c.snap.Load()
	st := old.statuses[tr.id]
	if st.LocalFault == fault {
		return
	}
	st.LocalFault = fault
	statuses := maps.Clone(old.statuses)
	statuses[tr.id] = st
	c.storeLocked(&Snapshot{statuses: statuses, ready: old.ready})
}

// jitter returns d spread uniformly by ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// transition records that tr went from one state to another at time at,
// publishes a new snapshot and logs it. It does nothing if tr has been
// removed meanwhile, so a late result cannot resurrect a removed target.
func (c *Checker) transition(ctx context.Context, tr *tracker, from, to State, err error, at time.Time) {
	st := Status{State: to, Since: at}
	if to == Down && err != nil {
		st.LastError = err.Error()
	}
	c.mu.Lock()
	if ctx.Err() != nil || c.trackers[tr.id] != tr {
		c.mu.Unlock()
		return
	}
	old := c.snap.Load()
	statuses := maps.Clone(old.statuses)
	statuses[tr.id] = st
	firstRound := !old.ready && allKnown(statuses)
	c.storeLocked(&Snapshot{statuses: statuses, ready: old.ready || firstRound})
	c.metrics.transition(tr.id, to)
	c.mu.Unlock()

	level := slog.LevelInfo
	if to == Down {
		level = slog.LevelWarn
	}
	attrs := []any{"target", tr.id, "from", from, "to", to}
	if st.LastError != "" {
		attrs = append(attrs, "error", st.LastError)
	}
	c.logger.Log(ctx, level, "target state changed", attrs...)
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
