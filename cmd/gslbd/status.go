package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/resolver"
)

// siteWhy says in words why a site serves or not.
func siteWhy(s resolver.SiteExplanation) string {
	why := fmt.Sprintf("%d/%d endpoints up, needs %d", s.Up, s.Total, s.Need)
	if s.Drained {
		why = "drained"
		if len(s.DrainedBy) > 0 {
			why += " (" + strings.Join(s.DrainedBy, ", ") + ")"
		}
		why += fmt.Sprintf("; %d/%d endpoints up", s.Up, s.Total)
	}
	return why
}

// Ready implements admin.Node: ready once the DNS listeners are up and the
// first probe round is done (or its bound passed), and not from the moment
// shutdown begins (the lame duck included).
func (n *node) Ready() (bool, string) {
	if n.stopping.Load() {
		return false, "shutting down"
	}
	if !n.listening.Load() {
		return false, "dns listeners not serving"
	}
	if !n.checker.Snapshot().Ready() {
		return false, "first health-check round not finished"
	}
	return true, ""
}

// insecureGossipWarning is what the status says about gossip in clear
// text on an address other than loopback.
const insecureGossipWarning = "gossip is not encrypted (cluster.insecure): anyone who reaches the gossip port can join, report health and drain sites; set cluster.key_file"

// Status implements admin.Node.
func (n *node) Status() api.Status {
	cur := n.pub.current()
	ready, _ := n.Ready()
	suspect := cur.View.Suspect()
	doc := api.Status{
		Node: n.cfg.Node.Name, Site: n.cfg.Node.Site, ConfigHash: cur.Zones.Hash(),
		Generation: cur.Generation, Published: cur.At, Ready: ready,
		ViewSuspect: slices.Contains(suspect, n.cfg.Node.Name),
		Drains:      cur.Drains.Records(),
		SetAside:    cur.Drains.SetAside(),
	}
	if doc.Drains == nil {
		doc.Drains = []drain.Record{}
	}
	for _, svc := range cur.Zones.Services() {
		// The verdicts are those of the rule the answers use, for a client
		// no client-limited drain covers.
		e := resolver.Explain(svc, cur.View, cur.Drains, noClient)
		ss := api.ServiceStatus{Name: svc.Name, Answer: e.Answering()}
		switch {
		case e.Servfail:
			ss.Answer = "servfail"
		case e.AllDown():
			ss.Answer = "all_down"
		}
		for i, site := range svc.Sites {
			st := api.SiteStatus{Site: site.Site, Serving: e.Sites[i].Servable, Why: siteWhy(e.Sites[i])}
			for _, r := range cur.Drains.Affecting(svc.Name, site.Site) {
				st.DrainedBy = append(st.DrainedBy, r.ID)
			}
			for _, ep := range site.Endpoints {
				v := cur.View.Verdict(ep.ID)
				es := api.EndpointStatus{ID: ep.ID, Address: ep.Addr.String(), Up: v.Up, Reason: v.Reason, Local: "unknown"}
				if s, ok := cur.Local.Get(ep.ID); ok {
					es.Local = s.State.String()
					es.Error = s.LastError
					es.LocalFault = s.LocalFault
				}
				st.Endpoints = append(st.Endpoints, es)
			}
			ss.Sites = append(ss.Sites, st)
		}
		doc.Services = append(doc.Services, ss)
	}
	if n.cluster != nil {
		doc.Gossip = &api.GossipStatus{Encrypted: n.cluster.Encrypted(), Keys: n.cluster.KeyIDs()}
		if n.cluster.Insecure() {
			doc.Gossip.Warning = insecureGossipWarning
		}
		last := map[string]time.Time{}
		for _, r := range cur.Remote {
			last[r.Origin] = r.At
		}
		for _, m := range n.cluster.Members() {
			doc.Peers = append(doc.Peers, api.PeerStatus{
				Name: m.Name, Site: m.Site, Address: m.Addr.String(), State: m.State,
				ConfigHash: m.ConfigHash, SameConfig: m.SameConfig, LastReport: last[m.Name],
				ViewSuspect: slices.Contains(suspect, m.Name),
			})
		}
		sort.Slice(doc.Peers, func(i, j int) bool { return doc.Peers[i].Name < doc.Peers[j].Name })
	}
	return doc
}
