package resolver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// exampleOrg is the main test zone. Its negative TTL is min(3600, 300).
const exampleOrg = `
$ORIGIN example.org.
@               3600 IN SOA   ns1 hostmaster 2024010101 7200 3600 1209600 300
@               3600 IN NS    ns1
@               3600 IN NS    ns2.example.net.
@               3600 IN MX    10 mail
@               3600 IN MX    20 www
@               3600 IN TXT   "v=spf1 -all"
ns1             3600 IN A     192.0.2.53
ns1             3600 IN AAAA  2001:db8::53
mail             300 IN A     192.0.2.25
a.b.c            300 IN A     192.0.2.10
www              300 IN TXT   "static data at a service owner"
_sip._tcp        300 IN SRV   10 5 5060 mail
alias            300 IN CNAME mail
chain            300 IN CNAME alias
loop1            300 IN CNAME loop2
loop2            300 IN CNAME LOOP1.example.org.
dangling         300 IN CNAME nothere
out              300 IN CNAME www.example.com.
cross            300 IN CNAME host.example.net.
cross-nx         300 IN CNAME gone.example.net.
svcalias         300 IN CNAME www
strictalias      300 IN CNAME strict
refalias         300 IN CNAME deep.sub
hop1             300 IN CNAME hop2
hop2             300 IN CNAME hop3
hop3             300 IN CNAME hop4
hop4             300 IN CNAME hop5
hop5             300 IN CNAME hop6
hop6             300 IN CNAME hop7
hop7             300 IN CNAME hop8
hop8             300 IN CNAME hop9
hop9             300 IN CNAME mail
*.wild            60 IN A     192.0.2.80
*.wild            60 IN TXT   "wild"
exists.wild       60 IN TXT   "real"
*.cw              60 IN CNAME mail
x.*.we            60 IN A     192.0.2.81
sub             3600 IN NS    ns.sub
sub             3600 IN NS    ns.example.net.
sub             3600 IN DS    12345 13 2 3F3E2D1C0B0A09080706050403020100F0E1D2C3B4A5968778695A4B3C2D1E0F
ns.sub          3600 IN A     192.0.2.100
nods            3600 IN NS    ns.nods
ns.nods         3600 IN AAAA  2001:db8::100
hosted          3600 IN NS    ns1
hosted          3600 IN DS    54321 13 2 0F1E2D3C4B5A69788796A5B4C3D2E1F000102030405060708090A0B0C0D1E3F3
mx              300 IN MX     10 ns.sub
`

// exampleNet is a second zone, for CNAMEs across zones. Its negative TTL
// is min(3600, 60).
const exampleNet = `
$ORIGIN example.net.
@               3600 IN SOA   ns2 hostmaster 7 3600 600 86400 60
@               3600 IN NS    ns2
ns              3600 IN A     203.0.113.53
ns2             3600 IN A     203.0.113.54
host             300 IN A     203.0.113.10
gone             300 IN CNAME missing
`

// hostedExampleOrg is a child zone of example.org that we serve too.
const hostedExampleOrg = `
$ORIGIN hosted.example.org.
@               3600 IN SOA   ns1.example.org. hostmaster.example.org. 1 3600 600 86400 120
@               3600 IN NS    ns1.example.org.
@                300 IN A     192.0.2.200
`

// parseZone parses zone text with miekg's zone parser.
func parseZone(t testing.TB, text string) []dns.RR {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), "", "test")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse zone: %v", err)
	}
	return rrs
}

func endpoints(svc, site string, addrs ...string) []zones.Endpoint {
	out := make([]zones.Endpoint, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, zones.Endpoint{ID: svc + "/" + site + "/" + a, Addr: netip.MustParseAddr(a)})
	}
	return out
}

// testSet builds the test zones and services. NewSet changes its
// arguments, so every test builds its own.
func testSet(t testing.TB) *zones.Set {
	t.Helper()
	org := zones.NewZone("example.org.", "example.org.zone", parseZone(t, exampleOrg))
	org.AllowTransfer = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("127.0.0.1/32")}
	net := zones.NewZone("example.net.", "example.net.zone", parseZone(t, exampleNet))
	hosted := zones.NewZone("hosted.example.org.", "hosted.zone", parseZone(t, hostedExampleOrg))
	services := []*zones.Service{
		{
			Name: "www.example.org.", Policy: zones.Failover, TTL: 20,
			MinHealthy: zones.Threshold{Count: 1}, AllDown: zones.AllDownAll,
			Sites: []zones.ServiceSite{
				{Site: "ams", Endpoints: endpoints("www.example.org", "ams", "192.0.2.2", "2001:db8::1", "192.0.2.1")},
				{Site: "fra", Endpoints: endpoints("www.example.org", "fra", "198.51.100.2", "198.51.100.1")},
			},
		},
		{
			Name: "strict.example.org.", Policy: zones.Failover, TTL: 10,
			MinHealthy: zones.Threshold{PerMillion: 500_000}, AllDown: zones.AllDownServfail,
			Sites: []zones.ServiceSite{
				{Site: "ams", Endpoints: endpoints("strict.example.org", "ams", "192.0.2.31", "192.0.2.32")},
			},
		},
		{
			Name: "*.svcwild.example.org.", Policy: zones.Failover, TTL: 30,
			MinHealthy: zones.Threshold{Count: 1},
			Sites: []zones.ServiceSite{
				{Site: "ams", Endpoints: endpoints("*.svcwild.example.org", "ams", "192.0.2.41")},
			},
		},
	}
	return zones.NewSet([]*zones.Zone{org, net, hosted}, services, "test")
}

// health is a fake Health: endpoint ID to up; an ID not listed is up.
type health map[string]bool

func (h health) Up(id string) bool {
	up, ok := h[id]
	return !ok || up
}

// down returns a health with the given endpoint IDs down.
func down(ids ...string) health {
	h := health{}
	for _, id := range ids {
		h[id] = false
	}
	return h
}

// drains is a fake Drains: "service|site" drained for every client.
type drains map[string]bool

func (d drains) Drained(service, site string, _ netip.Addr) bool { return d[service+"|"+site] }

// panicHealth panics on every call, to test the recovery in ServeDNS.
type panicHealth struct{}

func (panicHealth) Up(string) bool { panic("health exploded") }
