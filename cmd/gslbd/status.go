package main

import (
	"net/http"
	"sort"
	"time"

	"github.com/gslbd/gslbd/admin"
	"github.com/gslbd/gslbd/drain"
)

func (n *node) adminHandler() http.Handler {
	n.adminAPI = admin.New(admin.Config{Node: n, Drains: n.drains, Tokens: n.tokens, AnonymousRead: n.cfg.Admin.AnonymousRead,
		Gatherer: n.reg, Logger: n.log.With("component", "admin")})
	return n.adminAPI
}

// Ready implements admin.Node: ready once the DNS listeners are up and the
// first probe round is done (or its bound passed), and not while stopping.
func (n *node) Ready() (bool, string) {
	if !n.listening.Load() {
		return false, "dns listeners not serving"
	}
	if !n.checker.Snapshot().Ready() {
		return false, "first health-check round not finished"
	}
	return true, ""
}

// statusDoc is the admin API's view of the node.
type statusDoc struct {
	Node       string          `json:"node"`
	Site       string          `json:"site"`
	ConfigHash string          `json:"config_hash"`
	Generation uint64          `json:"generation"`
	Published  time.Time       `json:"published"`
	Ready      bool            `json:"ready"`
	Services   []serviceStatus `json:"services"`
	Peers      []peerStatus    `json:"peers,omitempty"`
	// Drains are the operator drains in force in the published state.
	Drains []drain.Record `json:"drains"`
}

type serviceStatus struct {
	Name  string       `json:"name"`
	Sites []siteStatus `json:"sites"`
}

type siteStatus struct {
	Site      string           `json:"site"`
	Endpoints []endpointStatus `json:"endpoints"`
	// DrainedBy lists the IDs of drains in force for this site and
	// service, those limited to some clients included.
	DrainedBy []string `json:"drained_by,omitempty"`
}

type endpointStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Up      bool   `json:"up"`
	Reason  string `json:"reason"`
	Local   string `json:"local_probe"`
	Error   string `json:"local_error,omitempty"`
}

type peerStatus struct {
	Name       string    `json:"name"`
	Site       string    `json:"site"`
	Address    string    `json:"address"`
	State      string    `json:"state"`
	ConfigHash string    `json:"config_hash"`
	SameConfig bool      `json:"same_config"`
	LastReport time.Time `json:"last_report,omitzero"`
}

// Status implements admin.Node.
func (n *node) Status() any {
	cur := n.pub.current()
	ready, _ := n.Ready()
	doc := statusDoc{
		Node: n.cfg.Node.Name, Site: n.cfg.Node.Site, ConfigHash: cur.Zones.Hash(),
		Generation: cur.Generation, Published: cur.At, Ready: ready,
		Drains: cur.Drains.Records(),
	}
	if doc.Drains == nil {
		doc.Drains = []drain.Record{}
	}
	for _, svc := range cur.Zones.Services() {
		ss := serviceStatus{Name: svc.Name}
		for _, site := range svc.Sites {
			st := siteStatus{Site: site.Site}
			for _, r := range cur.Drains.Affecting(svc.Name, site.Site) {
				st.DrainedBy = append(st.DrainedBy, r.ID)
			}
			for _, ep := range site.Endpoints {
				v := cur.View.Verdict(ep.ID)
				es := endpointStatus{ID: ep.ID, Address: ep.Addr.String(), Up: v.Up, Reason: v.Reason, Local: "unknown"}
				if s, ok := cur.Local.Get(ep.ID); ok {
					es.Local = s.State.String()
					es.Error = s.LastError
				}
				st.Endpoints = append(st.Endpoints, es)
			}
			ss.Sites = append(ss.Sites, st)
		}
		doc.Services = append(doc.Services, ss)
	}
	if n.cluster != nil {
		last := map[string]time.Time{}
		for _, r := range cur.Remote {
			last[r.Origin] = r.At
		}
		for _, m := range n.cluster.Members() {
			doc.Peers = append(doc.Peers, peerStatus{
				Name: m.Name, Site: m.Site, Address: m.Addr.String(), State: m.State,
				ConfigHash: m.ConfigHash, SameConfig: m.SameConfig, LastReport: last[m.Name],
			})
		}
		sort.Slice(doc.Peers, func(i, j int) bool { return doc.Peers[i].Name < doc.Peers[j].Name })
	}
	return doc
}
