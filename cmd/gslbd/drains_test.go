package main

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/zones"
)

// guardSet has talk (dc1, dc2, dc3; one endpoint up suffices) and pay
// (dc2, dc1; every endpoint must be up).
func guardSet() *zones.Set {
	ep := func(svc, site, addr string) zones.Endpoint {
		return zones.Endpoint{ID: svc + "/" + site + "/" + addr, Addr: netip.MustParseAddr(addr)}
	}
	talk := &zones.Service{Name: "talk.example.com.", MinHealthy: zones.Threshold{Count: 1}, Sites: []zones.ServiceSite{
		{Site: "dc1", Endpoints: []zones.Endpoint{ep("talk.example.com", "dc1", "192.0.2.1"), ep("talk.example.com", "dc1", "192.0.2.2")}},
		{Site: "dc2", Endpoints: []zones.Endpoint{ep("talk.example.com", "dc2", "198.51.100.1")}},
		{Site: "dc3", Endpoints: []zones.Endpoint{ep("talk.example.com", "dc3", "203.0.113.1")}},
	}}
	pay := &zones.Service{Name: "pay.example.com.", MinHealthy: zones.Threshold{PerMillion: 1_000_000}, Sites: []zones.ServiceSite{
		{Site: "dc2", Endpoints: []zones.Endpoint{ep("pay.example.com", "dc2", "198.51.100.2")}},
		{Site: "dc1", Endpoints: []zones.Endpoint{ep("pay.example.com", "dc1", "192.0.2.3"), ep("pay.example.com", "dc1", "192.0.2.4")}},
	}}
	return zones.NewSet([]*zones.Zone{zones.NewZone("example.com.", "example.com.zone", nil)}, []*zones.Service{talk, pay}, "h")
}

// viewWithDown merges reports from one node per site in which the given
// endpoints are down and every other one up.
func viewWithDown(set *zones.Set, down ...string) *health.View {
	now := time.Now()
	sites := endpointSites(set)
	reports := map[string]health.Report{}
	for id, site := range sites {
		r, ok := reports[site]
		if !ok {
			r = health.Report{Origin: "n-" + site, Site: site, Seq: 1, ConfigHash: "h", Ready: true, Targets: map[string]health.State{}}
		}
		r.Targets[id] = health.Up
		if slices.Contains(down, id) {
			r.Targets[id] = health.Down
		}
		reports[site] = r
	}
	var remote []health.Received
	for _, r := range reports {
		remote = append(remote, health.Received{Report: r, At: now})
	}
	return health.Merge(health.MergeInput{Self: "me", Site: "dc9", ConfigHash: "h", Remote: remote, Sites: sites,
		Now: now, Staleness: time.Second})
}

func TestUnservable(t *testing.T) {
	set := guardSet()
	key := func(site, service string, clients ...string) drain.Key {
		k := drain.Key{Site: site, Service: service}
		for _, c := range clients {
			k.Clients = append(k.Clients, netip.MustParsePrefix(c))
		}
		return k.Normalize()
	}
	active := func(keys ...drain.Key) *drain.View {
		var recs []drain.Record
		for _, k := range keys {
			recs = append(recs, drain.Record{ID: k.ID(), Key: k, Stamp: drain.Stamp{Wall: 1, Node: "n"}})
		}
		return drain.NewView(recs, time.Now())
	}
	dc2Down := []string{"talk.example.com/dc2/198.51.100.1", "pay.example.com/dc2/198.51.100.2"}
	tests := []struct {
		name   string
		down   []string
		active *drain.View
		cand   drain.Key
		want   []string
	}{
		{"all healthy: dc1 may go", nil, nil, key("dc1", ""), nil},
		{"dc2 down: draining dc1 strands pay", dc2Down, nil, key("dc1", ""), []string{"pay.example.com."}},
		{"dc2 down: draining dc1 for talk only", dc2Down, nil, key("dc1", "talk.example.com."), nil},
		{"dc2 down, dc3 drained: both stranded", dc2Down, active(key("dc3", "")), key("dc1", ""), []string{"pay.example.com.", "talk.example.com."}},
		{"dc3 drained for other clients only", dc2Down, active(key("dc3", "", "10.0.0.0/8")), key("dc1", "", "192.0.2.0/24"), []string{"pay.example.com."}},
		{"dc3 drained for overlapping clients", dc2Down, active(key("dc3", "", "10.0.0.0/8")), key("dc1", "", "10.1.0.0/16"), []string{"pay.example.com.", "talk.example.com."}},
		{"dc3 drained for talk, candidate for all clients", dc2Down, active(key("dc3", "talk.example.com.", "10.0.0.0/8")), key("dc1", ""), []string{"pay.example.com.", "talk.example.com."}},
		{"pay has no dc3", nil, active(key("dc1", ""), key("dc2", "")), key("dc3", ""), []string{"talk.example.com."}},
		{"one of two dc1 endpoints down fails pay's 100%", []string{"pay.example.com/dc1/192.0.2.3"}, nil, key("dc2", ""), []string{"pay.example.com."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := unservable(set, viewWithDown(set, tc.down...), tc.active, tc.cand)
			if !slices.Equal(got, tc.want) {
				t.Errorf("unservable(%s) = %v, want %v", tc.cand, got, tc.want)
			}
		})
	}
}

func TestCheckScope(t *testing.T) {
	set := guardSet()
	tests := []struct {
		key  drain.Key
		want string // "" for no error
	}{
		{drain.Key{Site: "dc1"}, ""},
		{drain.Key{Site: "dc3", Service: "talk.example.com."}, ""},
		{drain.Key{}, "site: required (sites: dc1, dc2, dc3)"},
		{drain.Key{Site: "dc9"}, `unknown site "dc9" (sites: dc1, dc2, dc3)`},
		{drain.Key{Site: "dc1", Service: "nope.example.com."}, `unknown service "nope.example.com." (services: pay.example.com., talk.example.com.)`},
		{drain.Key{Site: "dc3", Service: "pay.example.com."}, `service pay.example.com. has no site "dc3" (its sites: dc2, dc1)`},
	}
	for _, tc := range tests {
		err := checkScope(set, tc.key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkScope(%s) = %v, want nil", tc.key, err)
		case tc.want != "" && (!errors.Is(err, drain.ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkScope(%s) = %v, want ErrInvalid with %q", tc.key, err, tc.want)
		}
	}
}

// memberList is a drainGossip whose membership is fixed: the one input of
// spread that a test cannot easily get from a real cluster (a member on
// the far side of a partition).
type memberList []cluster.Member

func (memberList) BroadcastDrains([]drain.Record) {}
func (m memberList) Members() []cluster.Member    { return m }

// TestSpreadCountsUnreachableMembers: a drain's acknowledgement counts
// every member the cluster knows, not only the alive ones, and names those
// it cannot reach. Before issue 12 a member on the far side of a
// partition (dead to this node, but maybe answering queries) was left out,
// and a drain it never saw read as complete.
func TestSpreadCountsUnreachableMembers(t *testing.T) {
	rec := drain.Record{ID: "d1", Stamp: drain.Stamp{Wall: 1, Node: "a"}}
	member := func(name, state string) cluster.Member { return cluster.Member{Name: name, State: state} }
	tests := []struct {
		name    string
		members memberList
		applied []string // besides a, which wrote it
		want    api.Ack
	}{
		{"all alive and applied", memberList{member("a", cluster.MemberAlive), member("b", cluster.MemberAlive)}, []string{"b"},
			api.Ack{Complete: true, Applied: []string{"a", "b"}, Missing: nil, Unreachable: []string{}}},
		{"one cut off by a partition", memberList{member("a", cluster.MemberAlive), member("b", cluster.MemberAlive), member("c", cluster.MemberDead)}, []string{"b"},
			api.Ack{Applied: []string{"a", "b"}, Missing: []string{"c"}, Unreachable: []string{"c"}}},
		{"one suspect, one slow", memberList{member("a", cluster.MemberAlive), member("b", cluster.MemberAlive), member("c", cluster.MemberSuspect)}, nil,
			api.Ack{Applied: []string{"a"}, Missing: []string{"b", "c"}, Unreachable: []string{"c"}}},
		{"one left on purpose", memberList{member("a", cluster.MemberAlive), member("b", cluster.MemberAlive), member("c", cluster.MemberLeft)}, []string{"b"},
			api.Ack{Complete: true, Applied: []string{"a", "b"}, Unreachable: []string{}}},
		{"a cut-off member that applied it after all", memberList{member("a", cluster.MemberAlive), member("c", cluster.MemberDead)}, []string{"c"},
			api.Ack{Complete: true, Applied: []string{"a", "c"}, Unreachable: []string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acks := drain.NewAcks("a")
			acks.Published([]drain.Record{rec})
			for _, n := range tc.applied {
				acks.Applied(n, []drain.Ack{{ID: rec.ID, Stamp: rec.Stamp}})
			}
			d := &drainAPI{self: "a", acks: acks, gossip: tc.members}
			got := d.spread(t.Context(), rec, 20*time.Millisecond)
			got.WaitedMillis = 0
			if got.Complete != tc.want.Complete || !slices.Equal(got.Applied, tc.want.Applied) ||
				!slices.Equal(got.Missing, tc.want.Missing) || !slices.Equal(got.Unreachable, tc.want.Unreachable) {
				t.Errorf("spread() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
