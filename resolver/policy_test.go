package resolver

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// weightedSvc builds a weighted service with one IPv4 endpoint per site:
// site i has address 192.0.2.(i+1), weight w[i] and capacity c[i].
func weightedSvc(w, c []int) *zones.Service {
	s := &zones.Service{Name: "w.example.org.", Zone: "example.org.", Policy: zones.Weighted, TTL: 20, MinHealthy: zones.Threshold{Count: 1}}
	for i := range w {
		name := string(rune('a' + i))
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		site := zones.ServiceSite{Site: name, Weight: w[i], Endpoints: []zones.Endpoint{{ID: name, Addr: addr}}}
		if c != nil {
			site.Capacity = c[i]
		}
		s.Sites = append(s.Sites, site)
	}
	return s
}

// TestWeightedDistribution measures the share of answers each site gets
// over 60000 queries with random IDs from random clients. Each share
// must be within 0.02 of the expected one (the standard deviation of a
// share near 0.5 over 60000 draws is 0.002).
func TestWeightedDistribution(t *testing.T) {
	tests := []struct {
		name string
		w, c []int
		down []string
		want []float64
	}{
		{name: "shares by weight", w: []int{5, 3, 2}, want: []float64{0.5, 0.3, 0.2}},
		{name: "a site drops out: its share goes by weight", w: []int{5, 3, 2}, down: []string{"a"}, want: []float64{0, 0.6, 0.4}},
		{name: "a site drops out: its share goes by spare capacity",
			w: []int{5, 3, 2}, c: []int{6, 4, 7}, down: []string{"a"},
			// room: b 1, c 5; 5 lost: b gets 1 more (3+... by room 1/6 of 5), c 5/6 of 5.
			want: []float64{0, (3 + 5.0/6) / 10, (2 + 25.0/6) / 10}},
		{name: "no site above its capacity while another has room",
			w: []int{5, 3, 2}, c: []int{5, 4, 8}, down: []string{"a"},
			// room 1 and 6 = 7 >= 5 lost: b 3+5/7, c 2+30/7.
			want: []float64{0, (3 + 5.0/7) / 10, (2 + 30.0/7) / 10}},
		{name: "every site full: the rest by capacity", w: []int{8, 1, 1}, c: []int{8, 2, 3}, down: []string{"a"},
			want: []float64{0, 0.4, 0.6}},
		{name: "weight 0 is a standby", w: []int{1, 0}, want: []float64{1, 0}},
		{name: "the standby takes over", w: []int{1, 0}, down: []string{"a"}, want: []float64{0, 1}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := weightedSvc(tc.w, tc.c)
			h := down(tc.down...)
			const n = 60000
			counts := make([]int, len(s.Sites))
			for range n {
				client := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 1})
				a := &asker{health: h, client: client, geo: client, geoBits: 32}
				a.hash = mix(uint64(rng.Uint32()&0xffff)<<48 ^ stableHash(a))
				c, addrs := choose(s, familyV4, a, nil)
				if c.site < 0 || len(addrs) != 1 || !c.varies {
					t.Fatalf("choose = %+v %v, want one site, varies", c, addrs)
				}
				counts[c.site]++
			}
			t.Logf("answers by site over %d queries: %v", n, counts)
			for i, want := range tc.want {
				got := float64(counts[i]) / n
				if math.Abs(got-want) > 0.02 {
					t.Errorf("site %s got %.3f of the answers, want %.3f ± 0.02 (counts %v)", s.Sites[i].Site, got, want, counts)
				}
			}
		})
	}
}

// TestWeightedIsDeterministicPerQuery: the same query ID from the same
// client gets the same site; the pick allocates nothing.
func TestWeightedIsDeterministicPerQuery(t *testing.T) {
	s := weightedSvc([]int{1, 1, 1, 1}, nil)
	a := &asker{client: client, geo: client, geoBits: 32}
	a.hash = mix(uint64(4242)<<48 ^ stableHash(a))
	c1, _ := choose(s, familyV4, a, nil)
	for range 10 {
		if c, _ := choose(s, familyV4, a, nil); c.site != c1.site {
			t.Fatalf("the same query chose site %d then %d", c1.site, c.site)
		}
	}
	var buf [4]netip.Addr
	if n := testing.AllocsPerRun(100, func() { choose(s, familyV4, a, buf[:0]) }); n != 0 {
		t.Errorf("weighted choose allocates %v times, want 0", n)
	}
}

// regionSet serves near.example.org (nearest: eu 192.0.2.0/24 and
// 2001:db8:e::/48 prefer fra; us 198.51.100.0/25 prefers iad; everyone
// else ams first), talk.example.org (a CNAME service) and
// many.example.org (failover, 6 addresses, at most 2 per answer).
func regionSet(t testing.TB, shuffle zones.Shuffle) *zones.Set {
	org := zones.NewZone("example.org.", "example.org.zone", parseZone(t, exampleOrg+`
talk.ams  300 IN A 192.0.2.201
talk.fra  300 IN A 192.0.2.202
`))
	regions := &zones.Regions{Names: []string{"eu", "us"}, Nets: []zones.RegionNet{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Region: 0},
		{Prefix: netip.MustParsePrefix("198.51.100.0/25"), Region: 1},
		{Prefix: netip.MustParsePrefix("2001:db8:e::/48"), Region: 0},
	}}
	one := zones.Threshold{Count: 1}
	return zones.NewSet([]*zones.Zone{org}, []*zones.Service{
		{Name: "near.example.org.", Policy: zones.Nearest, TTL: 20, MinHealthy: one, Regions: regions,
			RegionSites: [][]int{{1, 0, 2}, {2, 0, 1}},
			Sites: []zones.ServiceSite{
				{Site: "ams", Endpoints: endpoints("near", "ams", "203.0.113.1")},
				{Site: "fra", Endpoints: endpoints("near", "fra", "203.0.113.2")},
				{Site: "iad", Endpoints: endpoints("near", "iad", "203.0.113.3")},
			}},
		{Name: "talk.example.org.", Policy: zones.Failover, TTL: 20, MinHealthy: one, DegradedTTL: 5, HasDegradedTTL: true,
			Sites: []zones.ServiceSite{
				{Site: "ams", CNAME: "talk.ams.example.org.", Endpoints: endpoints("talk", "ams", "192.0.2.201")},
				{Site: "fra", CNAME: "talk.fra.example.org.", Endpoints: endpoints("talk", "fra", "192.0.2.202")},
			}},
		{Name: "many.example.org.", Policy: zones.Failover, TTL: 20, MinHealthy: one, MaxAnswers: 2, Shuffle: shuffle,
			DegradedTTL: 3, HasDegradedTTL: true,
			Sites: []zones.ServiceSite{
				{Site: "ams", Endpoints: endpoints("many", "ams", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6")},
				{Site: "fra", Endpoints: endpoints("many", "fra", "198.51.100.1")},
			}},
	}, "test")
}

// ecsQuery is a query for qname A carrying an ECS option.
func ecsQuery(qname string, family uint16, prefix uint8, addr string) *dns.Msg {
	m := dnstest.Case{Qname: qname, Qtype: dns.TypeA, UDPSize: 1232}.Msg()
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: prefix,
		Address: netip.MustParseAddr(addr).AsSlice()})
	return m
}

// replyECS returns the ECS option of a reply, or nil.
func replyECS(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

func TestNearest(t *testing.T) {
	st := newState(State{Zones: regionSet(t, "")}, defaultUDPSize)
	tests := []struct {
		name   string
		req    *dns.Msg
		source string
		h      Health
		want   string // the one address
		scope  int    // -1: no ECS in the reply
		rcode  int
	}{
		{name: "source address in eu", req: dnstest.Case{Qname: "near.example.org.", Qtype: dns.TypeA}.Msg(), source: "192.0.2.77", want: "203.0.113.2", scope: -1},
		{name: "source address elsewhere: the default order", req: dnstest.Case{Qname: "near.example.org.", Qtype: dns.TypeA}.Msg(), source: "10.0.0.1", want: "203.0.113.1", scope: -1},
		{name: "ECS in us wins over the source", req: ecsQuery("near.example.org.", 1, 24, "198.51.100.0"), source: "192.0.2.77", want: "203.0.113.3", scope: 25},
		{name: "ECS in eu, scope of the matched /24", req: ecsQuery("near.example.org.", 1, 24, "192.0.2.0"), source: "10.0.0.1", want: "203.0.113.2", scope: 24},
		{name: "ECS outside every region: scope that excludes the nearest network", req: ecsQuery("near.example.org.", 1, 25, "198.51.100.128"), source: "192.0.2.77", want: "203.0.113.1", scope: 25},
		{name: "ECS far from every region", req: ecsQuery("near.example.org.", 1, 24, "10.1.2.0"), source: "192.0.2.77", want: "203.0.113.1", scope: 1},
		{name: "IPv6 ECS in eu", req: ecsQuery("near.example.org.", 2, 56, "2001:db8:e:ff00::"), source: "10.0.0.1", want: "203.0.113.2", scope: 48},
		{name: "ECS /0: not located, the default order, scope 0", req: ecsQuery("near.example.org.", 1, 0, "0.0.0.0"), source: "192.0.2.77", want: "203.0.113.1", scope: 0},
		{name: "eu's site down: its next site", req: ecsQuery("near.example.org.", 1, 24, "192.0.2.0"), source: "10.0.0.1", h: down("near/fra/203.0.113.2"), want: "203.0.113.1", scope: 24},
		{name: "ECS at a static name: scope 0", req: ecsQuery("mail.example.org.", 1, 24, "192.0.2.0"), source: "10.0.0.1", want: "192.0.2.25", scope: 0},
		{name: "ECS at a failover service: scope 0", req: ecsQuery("talk.ams.example.org.", 1, 24, "192.0.2.0"), source: "10.0.0.1", want: "192.0.2.201", scope: 0},
		{name: "ECS with bits beyond the source prefix: FORMERR", req: ecsQuery("near.example.org.", 1, 16, "192.0.2.0"), source: "10.0.0.1", rcode: dns.RcodeFormatError, scope: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := st
			if tc.h != nil {
				s = newState(State{Zones: st.set, Health: tc.h}, defaultUDPSize)
			}
			got, in := respond(s, tc.req, netip.MustParseAddr(tc.source), false)
			if got.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.rcode == dns.RcodeSuccess {
				if len(got.Answer) != 1 || got.Answer[0].(*dns.A).A.String() != tc.want {
					t.Fatalf("answer %v, want %s", got.Answer, tc.want)
				}
				if isService := tc.req.Question[0].Name == "near.example.org."; in.varies != isService {
					t.Errorf("varies = %t, want %t", in.varies, isService)
				}
			}
			e := replyECS(got)
			switch {
			case tc.scope < 0 && e != nil:
				t.Errorf("reply has ECS %v, want none", e)
			case tc.scope >= 0 && e == nil:
				t.Errorf("reply has no ECS, want scope %d", tc.scope)
			case tc.scope >= 0 && int(e.SourceScope) != tc.scope:
				t.Errorf("ECS scope %d, want %d", e.SourceScope, tc.scope)
			}
			if e != nil {
				q := replyECS(tc.req)
				if e.Family != q.Family || e.SourceNetmask != q.SourceNetmask || !e.Address.Equal(q.Address) {
					t.Errorf("ECS %v does not echo the query's %v", e, q)
				}
			}
		})
	}
}

func TestECSMalformed(t *testing.T) {
	st := newState(State{Zones: regionSet(t, "")}, defaultUDPSize)
	two := ecsQuery("mail.example.org.", 1, 24, "192.0.2.0")
	two.IsEdns0().Option = append(two.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("192.0.3.0").AsSlice()})
	scoped := ecsQuery("mail.example.org.", 1, 24, "192.0.2.0")
	scoped.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).SourceScope = 24
	v6bits := ecsQuery("mail.example.org.", 2, 32, "2001:db8:1::")
	for name, req := range map[string]*dns.Msg{"two ECS options": two, "a scope in the query": scoped, "IPv6 bits beyond the prefix": v6bits} {
		got := answer(st, req, client, false)
		if got.Rcode != dns.RcodeFormatError || len(got.Answer) != 0 {
			t.Errorf("%s: rcode %s with %d answers, want FORMERR", name, dns.RcodeToString[got.Rcode], len(got.Answer))
		}
	}
}

func TestCNAMEService(t *testing.T) {
	runAnswerCasesOn(t, regionSet(t, ""), []answerCase{
		{name: "CNAME to the first site, chased in zone", Case: dnstest.Case{
			Qname: "talk.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"talk.example.org. 20 IN CNAME talk.ams.example.org.", "talk.ams.example.org. 300 IN A 192.0.2.201"}}},
		{name: "the first site down: CNAME to the second, with the degraded TTL", health: down("talk/ams/192.0.2.201"), Case: dnstest.Case{
			Qname: "talk.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"talk.example.org. 5 IN CNAME talk.fra.example.org.", "talk.fra.example.org. 300 IN A 192.0.2.202"}}},
		{name: "a CNAME question gets the CNAME alone", Case: dnstest.Case{
			Qname: "talk.example.org.", Qtype: dns.TypeCNAME, Authoritative: true,
			Answer: []string{"talk.example.org. 20 IN CNAME talk.ams.example.org."}}},
		{name: "another type follows the CNAME to NODATA", Case: dnstest.Case{
			Qname: "talk.example.org.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []string{"talk.example.org. 20 IN CNAME talk.ams.example.org."}, Ns: []string{orgSOA}}},
	})
}

func TestAnswerShaping(t *testing.T) {
	for _, shuffle := range []zones.Shuffle{zones.ShuffleRotate, zones.ShuffleClient} {
		st := newState(State{Zones: regionSet(t, shuffle)}, defaultUDPSize)
		seen := map[string]int{}
		for id := range 600 {
			req := dnstest.Case{Qname: "many.example.org.", Qtype: dns.TypeA}.Msg()
			req.Id = uint16(id)
			got, in := respond(st, req, client, false)
			if len(got.Answer) != 2 || !in.varies {
				t.Fatalf("%s: %d answers (varies %t), want 2", shuffle, len(got.Answer), in.varies)
			}
			seen[got.Answer[0].(*dns.A).A.String()]++
			if got.Answer[0].Header().Ttl != 20 {
				t.Errorf("%s: TTL %d with the preferred site whole, want 20", shuffle, got.Answer[0].Header().Ttl)
			}
		}
		// Rotation spreads the first address over all six; a client-stable
		// hash gives one client the same subset every time.
		if shuffle == zones.ShuffleRotate && len(seen) != 6 {
			t.Errorf("rotate: first addresses %v, want all 6", seen)
		}
		if shuffle == zones.ShuffleClient && len(seen) != 1 {
			t.Errorf("client: first addresses %v, want one for one client", seen)
		}
		if shuffle == zones.ShuffleClient {
			firsts := map[string]bool{}
			for i := range 64 {
				c := netip.AddrFrom4([4]byte{10, 0, byte(i), 1})
				got := answer(st, dnstest.Case{Qname: "many.example.org.", Qtype: dns.TypeA}.Msg(), c, false)
				firsts[got.Answer[0].(*dns.A).A.String()] = true
			}
			if len(firsts) < 4 {
				t.Errorf("client: 64 client subnets got first addresses %v, want them spread", firsts)
			}
			var buf [16]netip.Addr
			a := &asker{client: client, geo: client, geoBits: 32}
			if n := testing.AllocsPerRun(100, func() { choose(st.set.Service("many.example.org."), familyV4, a, buf[:0]) }); n != 0 {
				t.Errorf("shaping allocates %v times, want 0", n)
			}
		}
	}
}

func TestDegradedTTL(t *testing.T) {
	runAnswerCasesOn(t, regionSet(t, zones.ShuffleClient), []answerCase{
		{name: "one endpoint of the preferred site down: the degraded TTL", health: down("many/ams/192.0.2.1", "many/ams/192.0.2.2", "many/ams/192.0.2.3", "many/ams/192.0.2.4"), Case: dnstest.Case{
			Qname: "many.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"many.example.org. 3 IN A 192.0.2.5", "many.example.org. 3 IN A 192.0.2.6"}}},
		{name: "the preferred site drained: the degraded TTL", drains: drains{"many.example.org.|ams": true}, Case: dnstest.Case{
			Qname: "many.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"many.example.org. 3 IN A 198.51.100.1"}}},
	})
}

// TestFastPathLeavesPoliciesAlone: answers that depend on the query or
// the client are not prepacked; static names beside them are.
func TestFastPathLeavesPoliciesAlone(t *testing.T) {
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: regionSet(t, zones.ShuffleRotate)})
	st := r.cur.Load()
	for _, tc := range []struct {
		qname string
		fast  bool
	}{
		{"near.example.org.", false},
		{"many.example.org.", false},
		{"mail.example.org.", true},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.qname, dns.TypeA)
		if got := checkFast(t, st, m, client); got != tc.fast {
			t.Errorf("fast path answered %s A: %v, want %v", tc.qname, got, tc.fast)
		}
	}
}
