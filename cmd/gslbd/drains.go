package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/admin"
	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/zones"
)

// drains wires operator drains together: the node's drain.Store, the
// acknowledgements, gossip and the admin API. It implements
// cluster.Drains and admin.Drains.
//
// Acknowledgement: once the publisher has handed the resolver a state
// holding a drain version, this node has applied it; it records that for
// its own writes and sends a drain ack to the writing node for the writes
// of others. A write on this node waits (bounded by the request) until
// every live member has acknowledged, and reports who has and who has not.
type drains struct {
	self  string
	store *drain.Store
	acks  *drain.Acks
	log   *slog.Logger

	// Set once by newNode before anything runs.
	cluster *cluster.Cluster // nil without gossip
	pub     *publisher

	// writeMu serializes this node's writes, so that the guardrail judges
	// each drain against the ones written before it.
	writeMu sync.Mutex

	// acked holds the version of each drain this node last applied. Only
	// the publisher goroutine uses it (through published).
	acked map[string]drain.Stamp
}

var (
	_ cluster.Drains = (*drains)(nil)
	_ admin.Drains   = (*drains)(nil)
)

// openDrains opens <state_dir>/drains.json.
func openDrains(cfg *Config, logger *slog.Logger, reg prometheus.Registerer) (*drains, error) {
	path := filepath.Join(cfg.resolve(cfg.StateDir), drain.FileName)
	store, err := drain.Open(drain.StoreConfig{Node: cfg.Node.Name, Path: path}, logger)
	if err != nil {
		return nil, err
	}
	d := &drains{self: cfg.Node.Name, store: store, acks: drain.NewAcks(), log: logger, acked: map[string]drain.Stamp{}}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "drain", Name: "in_force",
		Help: "Operator drains in force on this node.",
	}, func() float64 { return float64(store.View(time.Now()).Len()) }))
	return d, nil
}

// DrainRecords implements cluster.Drains.
func (d *drains) DrainRecords() []drain.Record { return d.store.Records() }

// MergeDrains implements cluster.Drains.
func (d *drains) MergeDrains(from string, recs []drain.Record) error {
	_, err := d.store.Merge(recs, time.Now())
	return err
}

// DrainsApplied implements cluster.Drains.
func (d *drains) DrainsApplied(node string, acks []drain.Ack) { d.acks.Applied(node, acks) }

// published is called by the publisher after each publish with the
// records the resolver's drain view was built from.
func (d *drains) published(recs []drain.Record) {
	var own []drain.Ack
	remote := map[string][]drain.Ack{}
	held := make(map[string]bool, len(recs))
	for _, r := range recs {
		held[r.ID] = true
	}
	for id := range d.acked {
		if !held[id] { // forgotten by the store after its grace period
			delete(d.acked, id)
			d.acks.Forget(id)
		}
	}
	for _, r := range recs {
		if d.acked[r.ID] == r.Stamp {
			continue
		}
		d.acked[r.ID] = r.Stamp
		a := drain.Ack{ID: r.ID, Stamp: r.Stamp}
		own = append(own, a)
		if r.Stamp.Node != d.self {
			remote[r.Stamp.Node] = append(remote[r.Stamp.Node], a)
		}
	}
	if len(own) > 0 {
		d.acks.Applied(d.self, own)
	}
	if d.cluster != nil {
		for node, acks := range remote {
			d.cluster.AckDrains(node, acks)
		}
	}
}

// List implements admin.Drains.
func (d *drains) List(all bool) []drain.Record {
	if all {
		return d.store.Records()
	}
	return d.store.View(time.Now()).Records()
}

// Get implements admin.Drains.
func (d *drains) Get(id string) (drain.Record, bool) { return d.store.Get(id) }

// Events implements admin.Drains.
func (d *drains) Events(limit int) []drain.Event { return d.store.Events(limit) }

// Create implements admin.Drains: it checks the scope against the
// service definitions and the guardrail, writes the drain (persisted),
// sends it to every peer and waits for their acknowledgements.
func (d *drains) Create(ctx context.Context, req admin.CreateRequest) (api.Result, error) {
	d.writeMu.Lock()
	cur := d.pub.current()
	req.Service = drain.CanonicalService(req.Service)
	if err := checkScope(cur.Zones, req.Key); err != nil {
		d.writeMu.Unlock()
		return api.Result{}, err
	}
	now := time.Now()
	blocked := unservable(cur.Zones, cur.View, d.store.View(now), req.Key)
	if len(blocked) > 0 && !req.Force {
		d.writeMu.Unlock()
		return api.Result{}, &drain.GuardError{Services: blocked}
	}
	rec, err := d.store.Create(req.Spec, req.By, now)
	d.writeMu.Unlock()
	if err != nil {
		return api.Result{}, err
	}
	if len(blocked) > 0 {
		d.log.Warn("drain forced: services left without a site able to take traffic", "id", rec.ID, "by", req.By, "services", blocked)
	}
	return api.Result{Drain: rec, Ack: d.spread(ctx, rec, req.Wait), Forced: blocked}, nil
}

// Delete implements admin.Drains.
func (d *drains) Delete(ctx context.Context, req admin.DeleteRequest) (api.Result, error) {
	d.writeMu.Lock()
	rec, err := d.store.Delete(req.ID, req.By, req.Reason, time.Now())
	d.writeMu.Unlock()
	if err != nil {
		return api.Result{}, err
	}
	return api.Result{Drain: rec, Ack: d.spread(ctx, rec, req.Wait)}, nil
}

// spread sends a local write to every peer and waits up to wait for the
// live nodes (this one included) to apply it.
func (d *drains) spread(ctx context.Context, rec drain.Record, wait time.Duration) api.Ack {
	nodes := []string{d.self}
	if d.cluster != nil {
		d.cluster.BroadcastDrains([]drain.Record{rec})
		for _, m := range d.cluster.Members() {
			if m.Name != d.self && (m.State == cluster.MemberAlive || m.State == cluster.MemberSuspect) {
				nodes = append(nodes, m.Name)
			}
		}
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	applied, missing := d.acks.Wait(wctx, rec.ID, rec.Stamp, nodes)
	return api.Ack{Complete: len(missing) == 0, Applied: applied, Missing: missing,
		WaitedMillis: time.Since(start).Milliseconds()}
}

// checkScope verifies that a drain names a site (and service) the
// service definitions know.
func checkScope(set *zones.Set, k drain.Key) error {
	var sites, services []string
	var svc *zones.Service
	for _, s := range set.Services() {
		services = append(services, s.Name)
		if s.Name == k.Service {
			svc = s
		}
		for _, st := range s.Sites {
			if !slices.Contains(sites, st.Site) {
				sites = append(sites, st.Site)
			}
		}
	}
	slices.Sort(sites)
	slices.Sort(services)
	if k.Site == "" {
		return fmt.Errorf("%w: site: required (sites: %s)", drain.ErrInvalid, listOrNone(sites))
	}
	if !slices.Contains(sites, k.Site) {
		return fmt.Errorf("%w: unknown site %q (sites: %s)", drain.ErrInvalid, k.Site, listOrNone(sites))
	}
	if k.Service == "" {
		return nil
	}
	if svc == nil {
		return fmt.Errorf("%w: unknown service %q (services: %s)", drain.ErrInvalid, k.Service, listOrNone(services))
	}
	var own []string
	for _, st := range svc.Sites {
		if st.Site == k.Site {
			return nil
		}
		own = append(own, st.Site)
	}
	return fmt.Errorf("%w: service %s has no site %q (its sites: %s)", drain.ErrInvalid, svc.Name, k.Site, strings.Join(own, ", "))
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none configured"
	}
	return strings.Join(s, ", ")
}

// unservable returns the services that, with the drain cand in force on
// top of the drains in active, would have no site able to take traffic
// for some client of cand: no site that is not drained and has enough
// endpoints up in view. A drain in active counts against a site when its
// clients overlap cand's, which errs on the side of refusing. The names
// are sorted.
func unservable(set *zones.Set, view *health.View, active *drain.View, cand drain.Key) []string {
	var out []string
	for _, svc := range set.Services() {
		if cand.Service != "" && cand.Service != svc.Name {
			continue
		}
		affected, ok := false, false
		for _, site := range svc.Sites {
			if site.Site == cand.Site {
				affected = true
				continue
			}
			if drainedFor(active, svc.Name, site.Site, cand.Clients) {
				continue
			}
			up := 0
			for _, ep := range site.Endpoints {
				if view.Up(ep.ID) {
					up++
				}
			}
			if up >= svc.MinHealthy.Need(len(site.Endpoints)) {
				ok = true
			}
		}
		if affected && !ok {
			out = append(out, svc.Name)
		}
	}
	slices.Sort(out)
	return out
}

func drainedFor(active *drain.View, service, site string, clients []netip.Prefix) bool {
	for _, r := range active.Affecting(service, site) {
		if drain.Overlap(r.Clients, clients) {
			return true
		}
	}
	return false
}
