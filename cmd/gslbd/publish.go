package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
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

// peers is what the publisher needs of the cluster: the other nodes'
// reports, a signal when they change, and a way to announce ours.
// *cluster.Cluster implements it.
type peers interface {
	Reports() []health.Received
	Changed() <-chan struct{}
	Announce(health.Report)
}

var _ peers = (*cluster.Cluster)(nil)

// publisher is the single goroutine that turns zones, local probes and
// peers' reports into the resolver's state. Because it is the only writer,
// a publish is one atomic store and no update is lost.
type publisher struct {
	cfg     publisherConfig
	res     *resolver.Resolver
	checker *health.Checker
	cluster peers   // nil without gossip
	drains  *drains // nil in tests without drains
	log     *slog.Logger
	metrics *publishMetrics
	zonesCh chan struct{}
	// firstRound is closed by the first publish whose local snapshot is
	// ready: from then on the resolver answers from checked endpoints.
	firstRound     chan struct{}
	firstRoundDone bool // publishing goroutine only
	// sites maps endpoint IDs to their site for sitesOf, the Set it was
	// built from; touched by the publishing goroutine only.
	sites    map[string]string
	sitesOf  *zones.Set
	newZones atomic.Pointer[zones.Set]
	last     atomic.Pointer[published]
}

func newPublisher(cfg publisherConfig, set *zones.Set, res *resolver.Resolver, checker *health.Checker,
	cl peers, d *drains, logger *slog.Logger, reg prometheus.Registerer) *publisher {
	p := &publisher{
		cfg: cfg, res: res, checker: checker, cluster: cl, drains: d, log: logger,
		metrics:    newPublishMetrics(reg),
		zonesCh:    make(chan struct{}, 1),
		firstRound: make(chan struct{}),
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
	var clusterChanged <-chan struct{}
	if p.cluster != nil {
		clusterChanged = p.cluster.Changed()
	}
	var drainsChanged <-chan struct{}
	if p.drains != nil {
		drainsChanged = p.drains.store.Changed()
	}
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	p.armExpiry(expiry)
	for {
		// onlyExpiry: nothing changed but the clock, which may have made a
		// peer's report stale.
		onlyExpiry := false
		select {
		case <-ctx.Done():
			return nil
		case <-p.checker.Changed():
		case <-clusterChanged:
		case <-drainsChanged:
		case <-p.zonesCh:
		case <-expiry.C:
			onlyExpiry = true
		}
		// Coalesce: wait until the inputs have been quiet for a moment, but
		// never longer than maxDelay in all.
		deadline := time.NewTimer(publishMaxDelay)
		for quiet := false; !quiet; {
			q := time.NewTimer(publishQuiet)
			select {
			case <-ctx.Done():
				q.Stop()
				deadline.Stop()
				return nil
			case <-p.checker.Changed():
				onlyExpiry = false
			case <-clusterChanged:
				onlyExpiry = false
			case <-drainsChanged:
				onlyExpiry = false
			case <-p.zonesCh:
				onlyExpiry = false
			case <-q.C:
				quiet = true
			case <-deadline.C:
				quiet = true
			}
			q.Stop()
		}
		deadline.Stop()
		if onlyExpiry {
			p.remerge()
		} else {
			p.publish()
		}
		p.armExpiry(expiry)
	}
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
		!maps.Equal(prev.View.Verdicts(), view.Verdicts()) || !slices.Equal(prev.View.Stale(), view.Stale()) {
		p.publishView(set, local, remote, now, view)
		return
	}
	next := *prev
	next.View, next.Remote = view, remote
	p.last.Store(&next)
}

// merge computes the verdicts from the current inputs.
func (p *publisher) merge() (*zones.Set, *health.Snapshot, []health.Received, time.Time, *health.View) {
	set := p.newZones.Load()
	local := p.checker.Snapshot()
	var remote []health.Received
	if p.cluster != nil {
		remote = p.cluster.Reports()
	}
	now := time.Now()
	return set, local, remote, now, health.Merge(health.MergeInput{
		Self:       p.cfg.Self,
		Site:       p.cfg.Site,
		ConfigHash: set.Hash(),
		Local:      local,
		Remote:     remote,
		Sites:      p.endpointSites(set),
		Now:        now,
		Staleness:  p.cfg.Staleness,
	})
}

// publishView hands a new snapshot to the resolver.
func (p *publisher) publishView(set *zones.Set, local *health.Snapshot, remote []health.Received, now time.Time, view *health.View) {
	state := resolver.State{Zones: set, Health: view}
	var drainRecs []drain.Record
	var dview *drain.View
	if p.drains != nil {
		drainRecs = p.drains.store.Records()
		dview = drain.NewView(drainRecs, now)
		state.Drains = dview
	}
	gen := p.res.Publish(state)
	prev := p.last.Swap(&published{Generation: gen, At: now, Zones: set, View: view, Local: local, Remote: remote, Drains: dview})
	if !p.firstRoundDone && local.Ready() {
		p.firstRoundDone = true
		close(p.firstRound)
	}
	if p.drains != nil {
		p.drains.published(drainRecs)
	}
	p.metrics.publishes.Inc()
	p.metrics.lastPublish.Set(float64(now.UnixNano()) / 1e9)
	if p.cluster != nil && (prev == nil || prev.Local != local || prev.Zones != set) {
		p.cluster.Announce(health.Report{
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
	}
	reg.MustRegister(m.publishes, m.lastPublish)
	return m
}

// endpointSites returns the endpoint-to-site map of set, built once per Set.
func (p *publisher) endpointSites(set *zones.Set) map[string]string {
	if p.sitesOf != set {
		p.sites, p.sitesOf = endpointSites(set), set
	}
	return p.sites
}

// firstRoundPublished returns a channel closed once the resolver's state
// holds a complete first probe round.
func (p *publisher) firstRoundPublished() <-chan struct{} { return p.firstRound }
