package resolver

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// namedDrains is a fake Drains that names its drains: "service|site" to
// the drain ID, for every client.
type namedDrains map[string]string

func (d namedDrains) Drained(service, site string, _ netip.Addr) bool {
	return d[service+"|"+site] != ""
}

func (d namedDrains) DrainedBy(service, site string, _ netip.Addr) []string {
	if id := d[service+"|"+site]; id != "" {
		return []string{id}
	}
	return nil
}

// TestExplainIsTheRule checks, over every combination of endpoint
// verdicts and drains of a two-site service under each all-down policy,
// that Explain names the site choose picks and that each site's verdict
// is Servable, consistent with the counts it reports.
func TestExplainIsTheRule(t *testing.T) {
	ids := []string{"a/192.0.2.1", "a/192.0.2.2", "b/198.51.100.1", "b/198.51.100.2"}
	for _, policy := range []zones.AllDown{zones.AllDownAll, zones.AllDownFirst, zones.AllDownServfail} {
		s := svc(zones.Threshold{Count: 2}, policy, []string{"192.0.2.1", "192.0.2.2"}, []string{"198.51.100.1", "198.51.100.2"})
		for mask := range 1 << len(ids) {
			h := health{}
			for i, id := range ids {
				h[id] = mask&(1<<i) != 0
			}
			for dmask := range 4 {
				d := namedDrains{}
				if dmask&1 != 0 {
					d["s.|a"] = "drain-a"
				}
				if dmask&2 != 0 {
					d["s.|b"] = "drain-b"
				}
				c, _ := choose(s, familyV4, &asker{health: h, drains: d, client: client}, nil)
				e := Explain(s, h, d, client)
				if e.Site != c.site || e.Servfail != c.servfail {
					t.Fatalf("%s, health %v, drains %v: Explain = site %d servfail %t, choose = site %d servfail %t",
						policy, h, d, e.Site, e.Servfail, c.site, c.servfail)
				}
				for i, se := range e.Sites {
					want := Servable(s, &s.Sites[i], h, d, client)
					if se.Servable != want || se.Servable != (se.Up >= se.Need && !se.Drained) {
						t.Fatalf("%s, health %v, drains %v: site %s = %+v, Servable %t", policy, h, d, se.Site, se, want)
					}
					if se.Drained != (len(se.DrainedBy) == 1) {
						t.Fatalf("site %s drained %t but DrainedBy %v", se.Site, se.Drained, se.DrainedBy)
					}
				}
			}
		}
	}
}

func TestDebugAnswer(t *testing.T) {
	debugClients := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("2001:db8:ff::/48")}
	r, _ := newResolver(t, Config{DebugClients: debugClients})
	r.Publish(State{Zones: testSet(t)}) // generation 1
	gen := r.Publish(State{Zones: testSet(t), Health: amsDown, Drains: namedDrains{"www.example.org.|fra": "0123456789ab"}})
	if gen != 2 {
		t.Fatalf("Publish = %d, want 2", gen)
	}
	soa := "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300"
	tests := []struct {
		name   string
		client string
		dnstest.Case
	}{
		{name: "explains the answer to a debug client", client: "127.0.0.2", Case: dnstest.Case{
			Qname: "_gslb.WWW.example.org.", Qtype: dns.TypeTXT, Authoritative: true, Answer: []string{
				`_gslb.www.example.org. 0 IN TXT "service=www.example.org." "answer=all_down" "all_down=all" "generation=2" "client=127.0.0.2" "family=ipv4"`,
				`_gslb.www.example.org. 0 IN TXT "site=ams" "order=1" "serving=no" "up=0/2" "need=1" "drained=no"`,
				`_gslb.www.example.org. 0 IN TXT "site=fra" "order=2" "serving=no" "up=2/2" "need=1" "drained=yes" "drained_by=0123456789ab"`,
			}}},
		{name: "IPv6 debug client", client: "2001:db8:ff::53", Case: dnstest.Case{
			Qname: "_gslb.strict.example.org.", Qtype: dns.TypeTXT, Authoritative: true, Answer: []string{
				`_gslb.strict.example.org. 0 IN TXT "service=strict.example.org." "answer=ams" "all_down=servfail" "generation=2" "client=2001:db8:ff::53" "family=ipv4"`,
				`_gslb.strict.example.org. 0 IN TXT "site=ams" "order=1" "serving=yes" "up=2/2" "need=1" "drained=no"`,
			}}},
		{name: "refused to anyone else", client: "192.0.2.9", Case: dnstest.Case{
			Qname: "_gslb.www.example.org.", Qtype: dns.TypeTXT, Rcode: dns.RcodeRefused}},
		{name: "other types at the debug name are ordinary", client: "127.0.0.1", Case: dnstest.Case{
			Qname: "_gslb.www.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []string{soa}}},
		{name: "a debug label over no service is an ordinary name", client: "127.0.0.1", Case: dnstest.Case{
			Qname: "_gslb.mail.example.org.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []string{soa}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewRecorder(tc.client)
			tc.Check(t, serve(r, w, tc.Msg())[0])
		})
	}

	// Without DebugClients nobody may ask.
	closed, _ := newResolver(t, Config{})
	closed.Publish(State{Zones: testSet(t)})
	w := dnstest.NewRecorder("127.0.0.1")
	dnstest.Case{Rcode: dns.RcodeRefused}.Check(t, serve(closed, w, dnstest.Case{Qname: "_gslb.www.example.org.", Qtype: dns.TypeTXT}.Msg())[0])
}

// TestExplainAnswering covers the accessors the metrics and status page
// use.
func TestExplainAnswering(t *testing.T) {
	s := svc(zones.Threshold{Count: 1}, zones.AllDownAll, []string{"192.0.2.1"}, []string{"198.51.100.1"})
	e := Explain(s, down("a/192.0.2.1"), nil, netip.Addr{})
	if got := e.Answering(); got != "b" || e.AllDown() {
		t.Errorf("Explain(a down).Answering() = %q, AllDown %t; want b, false", got, e.AllDown())
	}
	e = Explain(s, down("a/192.0.2.1", "b/198.51.100.1"), nil, netip.Addr{})
	if got := e.Answering(); got != "" || !e.AllDown() {
		t.Errorf("Explain(all down).Answering() = %q, AllDown %t; want \"\", true", got, e.AllDown())
	}
	if up := []int{e.Sites[0].Up, e.Sites[1].Up}; !slices.Equal(up, []int{0, 0}) {
		t.Errorf("up counts = %v, want [0 0]", up)
	}
}

// BenchmarkServeDNSOrdinaryTXT measures a TXT query that is not a debug
// query, to show the debug hook costs other names nothing measurable.
func BenchmarkServeDNSOrdinaryTXT(b *testing.B) {
	r, _ := newResolver(b, Config{DebugClients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	r.Publish(State{Zones: testSet(b)})
	w := dnstest.NewRecorder("192.0.2.9")
	req := dnstest.Case{Qname: "example.org.", Qtype: dns.TypeTXT}.Msg()
	for b.Loop() {
		w.Reset()
		r.ServeDNS(w, req)
	}
}
