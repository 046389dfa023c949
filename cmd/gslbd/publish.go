package main

import (
	"context"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/resolver"
	"github.com/gslbd/gslbd/zones"
)

// Coalescing: a burst of changes (a site dying flips many endpoints within
// a few milliseconds) becomes one publish. quiet is how long the inputs must
// stay still; maxDelay bounds the wait under a continuous stream.
const (
	publishQuiet    = 5 * time.Millisecond
	publishMaxDelay = 50 * time.Millisecond
)

type publisherConfig struct {
	Self, Site string
	Staleness  time.Duration
	// Quiet is health.MergeInput.Quiet: two heartbeats.
	Quiet time.Duration
}

// published is what the publisher last handed to the resolver, kept for
// the admin API.
type published struct {
	Generation uint64
	At         time.Time
	Zones      *zones.Set
	View       *health.View
	Local      *health.Snapshot
	Remote     []health.Received
	Drains     *drain.View
}

// The publisher's inputs, each a small interface that its package's type
// satisfies. Data flows one way: the inputs signal a change, the publisher
// reads them, merges, and hands the result to the resolver; nothing it
// feeds calls back into it.

// localHealth is this node's own probing: *health.Checker.
type localHealth interface {
	Snapshot() *health.Snapshot
	Changed() <-chan struct{}
	// Expedite probes now the endpoints another node saw fail
	// (health.View.Contested); an output, like the cluster's Announce.
	Expedite(ids []string)
}

// peers is the cluster: the other nodes' reports and a signal when they
// change, and where this node's report and its drain acknowledgements go.
// *cluster.Cluster implements it.
type peers interface {
	Reports() []health.Received
	Changed() <-chan struct{}
	Announce(health.Report)
	AckDrains(to string, acks []drain.Ack)
}

// drainRecords is the node's drain table, and its audit trail for what
// the cluster-wide guardrail decides: *drain.Store.
type drainRecords interface {
	Records() []drain.Record
	Changed() <-chan struct{}
	NoteGuard(now time.Time, changes []drain.GuardChange)
}

// drainLedger keeps the acknowledgement bookkeeping: *drain.Acks.
type drainLedger interface {
	Published(recs []drain.Record) map[string][]drain.Ack
}

var (
	_ localHealth  = (*health.Checker)(nil)
	_ peers        = (*cluster.Cluster)(nil)
	_ drainRecords = (*drain.Store)(nil)
	_ drainLedger  = (*drain.Acks)(nil)
)

// publisherDeps are the publisher's inputs and outputs. Local and
// Resolver are required; Peers is nil without gossip; Drains and Acks are
// nil in tests without drains.
type publisherDeps struct {
	Local    localHealth
	Peers    peers
	Drains   drainRecords
	Acks     drainLedger
	Resolver *resolver.Resolver
	// Observe, when set, is called with every snapshot handed to the
	// resolver, on the publisher goroutine: it must not block.
	Observe func(*published)
}

// publisher is the single goroutine that turns zones, local probes,
// peers' reports and drain records into the resolver's state. Because it
// is the only writer, a publish is one atomic store and no update is lost.
type publisher struct {
	cfg     publisherConfig
	deps    publisherDeps
	log     *slog.Logger
	metrics *publishMetrics
	zonesCh chan struct{}
	// The inputs' change signals; nil (never ready) for an absent input.
	peersChanged, drainsChanged <-chan struct{}
	// firstRound is closed by the first publish whose local snapshot is
	// ready: from then on the resolver answers from checked endpoints.
	firstRound     chan struct{}
	firstRoundDone bool // publishing goroutine only
	// sites maps endpoint IDs to their site, and services the services to
	// their sites, for sitesOf, the Set they were built from; touched by
	// the publishing goroutine only.
	sites    map[string]string
	services drain.Services
	sitesOf  *zones.Set
	newZones atomic.Pointer[zones.Set]
	last     atomic.Pointer[published]
	// release asks run's memory goroutine for a releaseMemory, after a
	// publish of a new zone set.
	release chan struct{}
}

func newPublisher(cfg publisherConfig, set *zones.Set, deps publisherDeps, logger *slog.Logger, reg prometheus.Registerer) *publisher {
	p := &publisher{
		cfg: cfg, deps: deps, log: logger,
		metrics:    newPublishMetrics(reg),
		zonesCh:    make(chan struct{}, 1),
		firstRound: make(chan struct{}),
		release:    make(chan struct{}, 1),
	}
	if deps.Peers != nil {
		p.peersChanged = deps.Peers.Changed()
	}
	if deps.Drains != nil {
		p.drainsChanged = deps.Drains.Changed()
	}
	p.newZones.Store(set)
	p.publish() // serve static data from the first query on
	return p
}

// zones returns the zone set currently published.
func (p *publisher) zones() *zones.Set { return p.newZones.Load() }

// current returns what was last published.
func (p *publisher) current() *published { return p.last.Load() }

// setZones hands a newly loaded zone set to the publisher. Safe for
// concurrent use.
func (p *publisher) setZones(set *zones.Set) {
	p.newZones.Store(set)
	select {
	case p.zonesCh <- struct{}{}:
	default:
	}
}

// run publishes on every change until ctx is done. Called once.
func (p *publisher) run(ctx context.Context) error {
	// Returning the garbage of a large new zone set to the system takes
	// a garbage collection of seconds: beside the publishes, not between
	// them, so that a health change right after a reload is not held up.
	var releasing sync.WaitGroup
	defer releasing.Wait()
	releasing.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.release:
				releaseMemory()
			}
		}
	})
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	quiet := time.NewTimer(time.Hour)
	defer quiet.Stop()
	p.armExpiry(expiry)
	for {
		changed, ok := p.next(ctx, expiry.C)
		if !ok {
			return nil
		}
		// onlyExpiry: nothing changed but the clock, which may have made a
		// peer's report stale.
		onlyExpiry := !changed
		// Coalesce: wait until the inputs have been quiet for a moment, but
		// never longer than publishMaxDelay in all.
		deadline := time.Now().Add(publishMaxDelay)
		for quiet.Reset(publishQuiet); ; {
			changed, ok := p.next(ctx, quiet.C)
			if !ok {
				return nil
			}
			if !changed {
				break
			}
			onlyExpiry = false
			quiet.Reset(min(publishQuiet, time.Until(deadline)))
		}
		if onlyExpiry {
			p.remerge()
		} else {
			p.publish()
		}
		p.armExpiry(expiry)
	}
}

// next waits for one of the inputs to change (changed) or for timer to
// fire; ok is false once ctx is done.
func (p *publisher) next(ctx context.Context, timer <-chan time.Time) (changed, ok bool) {
	select {
	case <-ctx.Done():
		return false, false
	case <-timer:
		return false, true
	case <-p.deps.Local.Changed():
	case <-p.peersChanged:
	case <-p.drainsChanged:
	case <-p.zonesCh:
	}
	return true, true
}

// armExpiry makes the publisher re-merge when a peer's report used in the
// current view goes stale, so a dead node's last word does not outlive it.
func (p *publisher) armExpiry(t *time.Timer) {
	d := time.Hour
	if cur := p.current(); cur != nil {
		if at := cur.View.NextExpiry(); !at.IsZero() {
			d = max(time.Until(at), time.Millisecond)
		}
	}
	t.Reset(d)
}

// publish merges the inputs into a view and hands it to the resolver.
func (p *publisher) publish() {
	set, local, remote, now, view := p.merge()
	p.publishView(set, local, remote, now, view)
}

// remerge merges again after a peer's report may have gone stale. In a
// healthy cluster heartbeats keep every report fresh and the verdicts do
// not change: then the resolver keeps its snapshot (no new generation) and
// only the view held for the expiry timer and the status is replaced.
func (p *publisher) remerge() {
	set, local, remote, now, view := p.merge()
	prev := p.current()
	if prev == nil || prev.Zones != set || prev.Local != local ||
		!maps.Equal(prev.View.Verdicts(), view.Verdicts()) || !slices.Equal(prev.View.Stale(), view.Stale()) ||
		!slices.Equal(prev.View.Suspect(), view.Suspect()) {
		p.publishView(set, local, remote, now, view)
		return
	}
	next := *prev
	next.View, next.Remote = view, remote
	p.last.Store(&next)
}

// noteSuspect exports whether this node's own view is set aside, and logs
// when that changes.
func (p *publisher) noteSuspect(prev *published, view *health.View) {
	suspect := slices.Contains(view.Suspect(), p.cfg.Self)
	was := prev != nil && slices.Contains(prev.View.Suspect(), p.cfg.Self)
	switch {
	case suspect && !was:
		p.log.Warn("own view suspect: none of this node's probes succeeds while other nodes see those endpoints up; its votes are set aside")
	case !suspect && was:
		p.log.Info("own view trusted again")
	}
	if suspect {
		p.metrics.viewSuspect.Set(1)
	} else {
		p.metrics.viewSuspect.Set(0)
	}
}

// merge computes the verdicts from the current inputs, and has this node
// probe at once the endpoints another node saw fail (health.View.Contested):
// every merge, whether it is published or not, since a peer's report that
// changes no verdict can still be the first word of an outage.
func (p *publisher) merge() (*zones.Set, *health.Snapshot, []health.Received, time.Time, *health.View) {
	set := p.newZones.Load()
	local := p.deps.Local.Snapshot()
	var remote []health.Received
	if p.deps.Peers != nil {
		remote = p.deps.Peers.Reports()
	}
	now := time.Now()
	view := health.Merge(health.MergeInput{
		Self:       p.cfg.Self,
		Site:       p.cfg.Site,
		ConfigHash: set.Hash(),
		Local:      local,
		Remote:     remote,
		Sites:      p.endpointSites(set),
		Now:        now,
		Staleness:  p.cfg.Staleness,
		Quiet:      p.cfg.Quiet,
	})
	p.deps.Local.Expedite(view.Contested())
	return set, local, remote, now, view
}

// publishView hands a new snapshot to the resolver, then tells the
// outputs that follow from it: the drain versions now applied (and the
// acknowledgements owed for them), and this node's report when it changed.
func (p *publisher) publishView(set *zones.Set, local *health.Snapshot, remote []health.Received, now time.Time, view *health.View) {
	state := resolver.State{Zones: set, Health: view}
	var drainRecs []drain.Record
	var dview *drain.View
	if p.deps.Drains != nil {
		drainRecs = p.deps.Drains.Records()
		p.endpointSites(set)
		dview = drain.NewGuardedView(drainRecs, now, p.services)
		state.Drains = dview
	}
	gen := p.deps.Resolver.Publish(state)
	cur := &published{Generation: gen, At: now, Zones: set, View: view, Local: local, Remote: remote, Drains: dview}
	prev := p.last.Swap(cur)
	if prev == nil || prev.Zones != set {
		select {
		case p.release <- struct{}{}:
		default:
		}
	}
	if p.deps.Observe != nil {
		p.deps.Observe(cur)
	}
	p.noteSuspect(prev, view)
	if p.deps.Drains != nil {
		var prevDrains *drain.View
		if prev != nil {
			prevDrains = prev.Drains
		}
		p.deps.Drains.NoteGuard(now, drain.GuardChanges(prevDrains, dview))
		p.metrics.setAside.Set(float64(len(dview.SetAside())))
	}
	if !p.firstRoundDone && local.Ready() {
		p.firstRoundDone = true
		close(p.firstRound)
	}
	p.metrics.publishes.Inc()
	p.metrics.lastPublish.Set(float64(now.UnixNano()) / 1e9)
	if p.deps.Acks != nil {
		owed := p.deps.Acks.Published(drainRecs)
		if p.deps.Peers != nil {
			for node, acks := range owed {
				p.deps.Peers.AckDrains(node, acks)
			}
		}
	}
	if p.deps.Peers != nil && (prev == nil || prev.Local != local || prev.Zones != set) {
		p.deps.Peers.Announce(health.Report{
			Origin:     p.cfg.Self,
			Site:       p.cfg.Site,
			ConfigHash: set.Hash(),
			Ready:      local.Ready(),
			Targets:    maps.Clone(local.States()),
		})
	}
}

type publishMetrics struct {
	publishes   prometheus.Counter
	lastPublish prometheus.Gauge
	viewSuspect prometheus.Gauge
	setAside    prometheus.Gauge
}

func newPublishMetrics(reg prometheus.Registerer) *publishMetrics {
	m := &publishMetrics{
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "publisher", Name: "publishes_total",
			Help: "Snapshots of zones and health verdicts published to the query path.",
		}),
		lastPublish: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "publisher", Name: "last_publish_timestamp_seconds",
			Help: "When the last snapshot was published.",
		}),
		viewSuspect: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "health", Name: "view_suspect",
			Help: "1 while this node's own probes are set aside: none succeeds while other nodes see those endpoints up.",
		}),
	}
	m.setAside = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "drain", Name: "set_aside",
		Help: "Drains in force that the cluster-wide guardrail does not apply: each would have left a service with no site, and was not forced.",
	})
	reg.MustRegister(m.publishes, m.lastPublish, m.viewSuspect, m.setAside)
	return m
}

// endpointSites returns the endpoint-to-site map of set, built once per Set.
func (p *publisher) endpointSites(set *zones.Set) map[string]string {
	if p.sitesOf != set {
		p.sites, p.services, p.sitesOf = endpointSites(set), drainServices(set), set
	}
	return p.sites
}

// firstRoundPublished returns a channel closed once the resolver's state
// holds a complete first probe round.
func (p *publisher) firstRoundPublished() <-chan struct{} { return p.firstRound }

// releaseMemory collects the garbage of loading and prepacking a new
// zone set and gives the memory back to the operating system. Loading a
// large set makes several times its size in garbage, which the runtime
// would otherwise keep resident for minutes; collecting it costs one
// garbage collection per new set (not per health change), beside the
// publisher's goroutine, never on the query path.
func releaseMemory() { debug.FreeOSMemory() }
