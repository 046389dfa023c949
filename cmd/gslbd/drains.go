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
	"github.com/gslbd/gslbd/resolver"
	"github.com/gslbd/gslbd/zones"
)

// drainAPI is the operator drain API of a node (admin.Drains): it checks
// a write against the service definitions and the guardrail, writes it to
// the node's drain.Store (persisted), sends it to every peer and waits for
// the acknowledgements that drain.Acks collects.
//
// It only reads what the rest of the node owns: the published state (for
// the guardrail), the store, the acknowledgements and the membership.
// Records received from peers go from cluster straight to the store;
// acknowledgements are kept by drain.Acks, fed by the publisher and by
// cluster.
type drainAPI struct {
	self   string
	store  *drain.Store
	acks   *drain.Acks
	state  publishedState
	gossip drainGossip // nil without gossip
	log    *slog.Logger

	// writeMu serializes this node's writes, so that the guardrail judges
	// each drain against the ones written before it.
	writeMu sync.Mutex
}

// publishedState is what the resolver answers from: *publisher.
type publishedState interface{ current() *published }

// drainGossip is what a drain write needs of the cluster: *cluster.Cluster.
type drainGossip interface {
	BroadcastDrains(recs []drain.Record)
	Members() []cluster.Member
}

var (
	_ admin.Drains   = (*drainAPI)(nil)
	_ publishedState = (*publisher)(nil)
	_ drainGossip    = (*cluster.Cluster)(nil)
)

// openDrains opens <state_dir>/drains.json.
func openDrains(cfg *Config, logger *slog.Logger, reg prometheus.Registerer) (*drain.Store, error) {
	path := filepath.Join(cfg.resolve(cfg.StateDir), drain.FileName)
	store, err := drain.Open(drain.StoreConfig{Node: cfg.Node.Name, Path: path, MaxSkew: cfg.Cluster.MaxSkew}, logger)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "drain", Name: "in_force",
		Help: "Operator drains in force on this node.",
	}, func() float64 { return float64(store.View(time.Now()).Len()) }))
	return store, nil
}

// List implements admin.Drains.
func (d *drainAPI) List(all bool) []drain.Record {
	if all {
		return d.store.Records()
	}
	return d.store.View(time.Now()).Records()
}

// Get implements admin.Drains.
func (d *drainAPI) Get(id string) (drain.Record, bool) { return d.store.Get(id) }

// Events implements admin.Drains.
func (d *drainAPI) Events(limit int) []drain.Event { return d.store.Events(limit) }

// Create implements admin.Drains: it checks the scope against the
// service definitions and the guardrail, writes the drain (persisted),
// sends it to every peer and waits for their acknowledgements.
func (d *drainAPI) Create(ctx context.Context, req admin.CreateRequest) (api.Result, error) {
	d.writeMu.Lock()
	cur := d.state.current()
	req.Service = drain.CanonicalService(req.Service)
	if err := checkScope(cur.Zones, req.Key); err != nil {
		d.writeMu.Unlock()
		return api.Result{}, err
	}
	now := time.Now()
	// The drains as the cluster-wide guardrail applies them: one it sets
	// aside does not count against this one, and this one, stamped after
	// every drain this node holds, is judged as the guardrail will.
	active := drain.NewGuardedView(d.store.Records(), now, drainServices(cur.Zones))
	blocked := unservable(cur.Zones, cur.View, active, req.Key)
	if len(blocked) > 0 && !req.Force {
		d.writeMu.Unlock()
		return api.Result{}, &drain.GuardError{Services: blocked}
	}
	req.Spec.Force = req.Force
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
func (d *drainAPI) Delete(ctx context.Context, req admin.DeleteRequest) (api.Result, error) {
	d.writeMu.Lock()
	rec, err := d.store.Delete(req.ID, req.By, req.Reason, time.Now())
	d.writeMu.Unlock()
	if err != nil {
		return api.Result{}, err
	}
	return api.Result{Drain: rec, Ack: d.spread(ctx, rec, req.Wait)}, nil
}

// spread sends a local write to every peer and waits up to wait for
// every member the cluster has known recently (this node included) to
// apply it: the alive and suspect ones, and the failed ones that cluster
// still tries to reach (a node on the far side of a partition may be
// answering queries all the same). Members that left on purpose are not
// waited for: they stopped serving, and catch up by push/pull when they
// rejoin. The failed and suspect ones that have not applied it are named
// as unreachable.
func (d *drainAPI) spread(ctx context.Context, rec drain.Record, wait time.Duration) api.Ack {
	nodes := []string{d.self}
	cut := map[string]bool{}
	if d.gossip != nil {
		d.gossip.BroadcastDrains([]drain.Record{rec})
		for _, m := range d.gossip.Members() {
			if m.Name == d.self || m.State == cluster.MemberLeft {
				continue
			}
			nodes = append(nodes, m.Name)
			if m.State != cluster.MemberAlive {
				cut[m.Name] = true
			}
		}
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	applied, missing := d.acks.Wait(wctx, rec.ID, rec.Stamp, nodes)
	unreachable := []string{}
	for _, n := range missing {
		if cut[n] {
			unreachable = append(unreachable, n)
		}
	}
	return api.Ack{Complete: len(missing) == 0, Applied: applied, Missing: missing, Unreachable: unreachable,
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
		for i := range svc.Sites {
			site := &svc.Sites[i]
			if site.Site == cand.Site {
				affected = true
				continue
			}
			ok = ok || resolver.Servable(svc, site, view, drainedFor{active, cand.Clients}, netip.Addr{})
		}
		if affected && !ok {
			out = append(out, svc.Name)
		}
	}
	slices.Sort(out)
	return out
}

// drainedFor answers resolver.Drains for the clients of a candidate drain
// rather than for one client: a site counts as drained when a drain in
// force for it overlaps those clients.
type drainedFor struct {
	active  *drain.View
	clients []netip.Prefix
}

func (d drainedFor) Drained(service, site string, _ netip.Addr) bool {
	for _, r := range d.active.Affecting(service, site) {
		if drain.Overlap(r.Clients, d.clients) {
			return true
		}
	}
	return false
}
