package resolver

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/gslbd/gslbd/zones"
)

// svc builds a service "s." with sites named a, b, c... holding the given
// addresses; endpoint IDs are "site/addr".
func svc(need zones.Threshold, allDown zones.AllDown, sites ...[]string) *zones.Service {
	s := &zones.Service{Name: "s.", Policy: zones.Failover, TTL: 30, MinHealthy: need, AllDown: allDown}
	for i, addrs := range sites {
		name := string(rune('a' + i))
		site := zones.ServiceSite{Site: name}
		for _, a := range addrs {
			site.Endpoints = append(site.Endpoints, zones.Endpoint{ID: name + "/" + a, Addr: netip.MustParseAddr(a)})
		}
		s.Sites = append(s.Sites, site)
	}
	return s
}

func TestChoose(t *testing.T) {
	one := zones.Threshold{Count: 1}
	two := zones.Threshold{Count: 2}
	half := zones.Threshold{PerMillion: 500_000}
	a := []string{"192.0.2.2", "192.0.2.1", "2001:db8::1"}
	b := []string{"198.51.100.1", "198.51.100.2"}
	tests := []struct {
		name     string
		svc      *zones.Service
		health   Health
		drains   Drains
		site     int
		servfail bool
		want     []string
	}{
		{name: "first site when all up, sorted, v4 before v6",
			svc: svc(one, zones.AllDownAll, a, b), site: 0,
			want: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{name: "nil health counts everything up",
			svc: svc(two, zones.AllDownAll, a, b), health: nil, site: 0,
			want: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{name: "first site serves only its up endpoints",
			svc: svc(one, zones.AllDownAll, a, b), health: down("a/192.0.2.1"), site: 0,
			want: []string{"192.0.2.2", "2001:db8::1"}},
		{name: "each family counts on its own: v4 fails over while v6 stays",
			svc: svc(one, zones.AllDownAll, a, b), health: down("a/192.0.2.1", "a/192.0.2.2"), site: 1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "below the count threshold fails over",
			svc: svc(two, zones.AllDownAll, a, b), health: down("a/192.0.2.1", "a/192.0.2.2"), site: 1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "at the count threshold stays",
			svc: svc(two, zones.AllDownAll, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, b), health: down("a/192.0.2.1"), site: 0,
			want: []string{"192.0.2.2", "192.0.2.3"}},
		{name: "the other family's endpoints do not make up the count",
			svc: svc(two, zones.AllDownAll, a, b), health: down("a/192.0.2.1"), site: 1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "a count above a family's endpoints needs all of them",
			svc: svc(two, zones.AllDownAll, a, b), health: down("a/2001:db8::1"), site: 0,
			want: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{name: "fraction rounds up: half of 3 needs 2",
			svc: svc(half, zones.AllDownAll, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, b), health: down("a/192.0.2.1", "a/192.0.2.3"), site: 1,
			want: []string{"198.51.100.1", "198.51.100.2"}},
		{name: "zero threshold still needs one up",
			svc: svc(zones.Threshold{}, zones.AllDownAll, a, b), health: down("a/192.0.2.1", "a/192.0.2.2", "a/2001:db8::1"), site: 1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "site without endpoints is never eligible",
			svc: svc(one, zones.AllDownAll, nil, b), site: 1,
			want: []string{"198.51.100.1", "198.51.100.2"}},
		{name: "drained site is skipped",
			svc: svc(one, zones.AllDownAll, a, b), drains: drains{"s.|a": true}, site: 1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "drain of another service does not matter",
			svc: svc(one, zones.AllDownAll, a, b), drains: drains{"t.|a": true}, site: 0,
			want: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{name: "all down, all: every endpoint of every site",
			svc: svc(one, zones.AllDownAll, a, b), health: down("a/192.0.2.1", "a/192.0.2.2", "a/2001:db8::1", "b/198.51.100.1", "b/198.51.100.2"), site: -1,
			want: []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "all down, empty policy is all",
			svc: svc(two, "", a, []string{"198.51.100.1"}), health: down("a/192.0.2.1", "a/192.0.2.2", "a/2001:db8::1", "b/198.51.100.1"), site: -1,
			want: []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "2001:db8::1"}},
		{name: "all down, unknown policy fails open like all",
			svc: svc(two, "bogus", a, []string{"198.51.100.1"}), health: down("a/192.0.2.1", "a/192.0.2.2", "a/2001:db8::1", "b/198.51.100.1"), site: -1,
			want: []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "2001:db8::1"}},
		{name: "all down, all: drained sites left out",
			svc: svc(one, zones.AllDownAll, a, b), health: down("b/198.51.100.1", "b/198.51.100.2"), drains: drains{"s.|a": true}, site: -1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "all down, all: every site when all are drained",
			svc: svc(one, zones.AllDownAll, a, b), drains: drains{"s.|a": true, "s.|b": true}, site: -1,
			want: []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "all down, all: duplicate addresses once",
			svc: svc(one, zones.AllDownAll, []string{"192.0.2.1"}, []string{"192.0.2.1"}), health: down("a/192.0.2.1", "b/192.0.2.1"), site: -1,
			want: []string{"192.0.2.1"}},
		{name: "all down, first: every endpoint of the first site",
			svc: svc(one, zones.AllDownFirst, a, b), health: down("a/192.0.2.1", "a/192.0.2.2", "a/2001:db8::1", "b/198.51.100.1", "b/198.51.100.2"), site: -1,
			want: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{name: "all down, first: the first site not drained",
			svc: svc(one, zones.AllDownFirst, a, b), health: down("b/198.51.100.1", "b/198.51.100.2"), drains: drains{"s.|a": true}, site: -1,
			want: []string{"198.51.100.1", "198.51.100.2", "2001:db8::1"}},
		{name: "all down, first: the first site when all are drained",
			svc: svc(one, zones.AllDownFirst, a, b), drains: drains{"s.|a": true, "s.|b": true}, site: -1,
			want: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{name: "all down, servfail",
			svc: svc(one, zones.AllDownServfail, a), health: down("a/192.0.2.1", "a/192.0.2.2", "a/2001:db8::1"), site: -1, servfail: true},
		{name: "no sites, all: nothing to serve",
			svc: svc(one, zones.AllDownAll), site: -1},
		{name: "no sites, first: nothing to serve",
			svc: svc(one, zones.AllDownFirst), site: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneService(tc.svc)
			c, got := chooseBoth(tc.svc, tc.health, tc.drains)
			if c.site != tc.site || c.servfail != tc.servfail {
				t.Errorf("choose() = site %d servfail %t, want site %d servfail %t", c.site, c.servfail, tc.site, tc.servfail)
			}
			if g := addrStrings(got); !slices.Equal(g, tc.want) {
				t.Errorf("choose() addresses = %v, want %v", g, tc.want)
			}
			if !sameService(tc.svc, before) {
				t.Errorf("choose() changed the service")
			}
		})
	}
}

func TestChoiceLabel(t *testing.T) {
	s := svc(zones.Threshold{Count: 1}, zones.AllDownAll, []string{"192.0.2.1"}, []string{"192.0.2.2"})
	for _, tc := range []struct {
		c    choice
		want string
	}{{choice{site: 0}, "a"}, {choice{site: 1}, "b"}, {choice{site: -1}, "all_down"}, {choice{site: -1, servfail: true}, "all_down"}} {
		if got := tc.c.label(s); got != tc.want {
			t.Errorf("%+v.label() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestChooseAppendsToBuffer checks that choose uses the caller's buffer,
// which keeps the query path free of allocations for the selection.
func TestChooseAppendsToBuffer(t *testing.T) {
	s := svc(zones.Threshold{Count: 1}, zones.AllDownAll, []string{"192.0.2.2", "192.0.2.1"})
	var buf [4]netip.Addr
	a := &asker{client: client}
	_, got := choose(s, familyV4, a, buf[:0])
	if &got[0] != &buf[0] {
		t.Errorf("choose() did not append to the buffer given")
	}
	allocs := testing.AllocsPerRun(100, func() { choose(s, familyV4, a, buf[:0]) })
	if allocs != 0 {
		t.Errorf("choose() allocates %v times, want 0", allocs)
	}
}

// chooseBoth runs choose for IPv4 then IPv6, as an ANY question does, and
// returns the IPv4 choice (the IPv6 one for a service without IPv4) and
// the addresses of both.
func chooseBoth(s *zones.Service, h Health, d Drains) (choice, []netip.Addr) {
	a := &asker{health: h, drains: d, client: client}
	c, got := choose(s, familyV4, a, nil)
	c6, got6 := choose(s, familyV6, a, nil)
	if c.none {
		c = c6
	}
	c.servfail = c.servfail || c6.servfail
	return c, append(got, got6...)
}

func addrStrings(addrs []netip.Addr) []string {
	out := []string{}
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

func cloneService(s *zones.Service) *zones.Service {
	c := *s
	c.Sites = slices.Clone(s.Sites)
	for i := range c.Sites {
		c.Sites[i].Endpoints = slices.Clone(s.Sites[i].Endpoints)
	}
	return &c
}

func sameService(a, b *zones.Service) bool {
	if len(a.Sites) != len(b.Sites) {
		return false
	}
	for i := range a.Sites {
		if a.Sites[i].Site != b.Sites[i].Site || !slices.Equal(a.Sites[i].Endpoints, b.Sites[i].Endpoints) {
			return false
		}
	}
	return true
}
