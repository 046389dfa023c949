package resolver

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

const (
	orgSOA    = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300"
	netSOA    = "example.net. 60 IN SOA ns2.example.net. hostmaster.example.net. 7 3600 600 86400 60"
	hostedSOA = "hosted.example.org. 120 IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 120"

	mailA = "mail.example.org. 300 IN A 192.0.2.25"
)

var (
	client = netip.MustParseAddr("198.18.0.1")
	// The addresses www.example.org selects with everything up.
	wwwAms = []string{"www.example.org. 20 IN A 192.0.2.1", "www.example.org. 20 IN A 192.0.2.2"}
	// All of www's endpoints.
	wwwAll = []string{
		"www.example.org. 20 IN A 192.0.2.1", "www.example.org. 20 IN A 192.0.2.2", "www.example.org. 20 IN AAAA 2001:db8::1",
	}
	amsDown = down("www.example.org/ams/192.0.2.1", "www.example.org/ams/192.0.2.2", "www.example.org/ams/2001:db8::1")
)

// svcSOA is the SOA of a negative answer at a service name with TTL ttl:
// min(SOA TTL, MINIMUM, service TTL).
func svcSOA(ttl int) string {
	return "example.org. " + strconv.Itoa(ttl) + " IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300"
}

// answerCase is one row of the answer tables.
type answerCase struct {
	name   string
	health Health
	drains Drains
	dnstest.Case
}

func runAnswerCases(t *testing.T, cases []answerCase) {
	t.Helper()
	runAnswerCasesOn(t, testSet(t), cases)
}

func runAnswerCasesOn(t *testing.T, set *zones.Set, cases []answerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newState(State{Zones: set, Health: tc.health, Drains: tc.drains}, defaultUDPSize)
			got := answer(st, tc.Msg(), client, false)
			tc.Check(t, got)
			// The fast path, where it answers, answers the same bytes.
			st.fast = buildFast(st, nil, nil)
			checkFast(t, st, tc.Msg(), client)
		})
	}
}

func TestAnswerStatic(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{name: "A", Case: dnstest.Case{
			Qname: "mail.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{mailA},
		}},
		{name: "qname case does not matter", Case: dnstest.Case{
			Qname: "MaIl.ExAmPlE.oRg.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{mailA},
		}},
		{name: "SOA at apex", Case: dnstest.Case{
			Qname: "example.org.", Qtype: dns.TypeSOA, Authoritative: true,
			Answer: []string{"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300"},
		}},
		{name: "NS at apex adds addresses of in-zone targets", Case: dnstest.Case{
			Qname: "example.org.", Qtype: dns.TypeNS, Authoritative: true,
			Answer: []string{"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.net."},
			Extra: []string{
				"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53",
				"ns2.example.net. 3600 IN A 203.0.113.54",
			},
		}},
		{name: "MX adds static and service addresses", Case: dnstest.Case{
			Qname: "example.org.", Qtype: dns.TypeMX, Authoritative: true,
			Answer: []string{"example.org. 3600 IN MX 10 mail.example.org.", "example.org. 3600 IN MX 20 www.example.org."},
			Extra:  append([]string{mailA}, wwwAll...),
		}},
		{name: "MX service additional follows failover", health: amsDown, Case: dnstest.Case{
			Qname: "example.org.", Qtype: dns.TypeMX, Authoritative: true,
			Answer: []string{"example.org. 3600 IN MX 10 mail.example.org.", "example.org. 3600 IN MX 20 www.example.org."},
			// Per family: IPv4 from fra; IPv6 only ams has, down, so all_down.
			Extra: []string{
				mailA, "www.example.org. 20 IN A 198.51.100.1", "www.example.org. 20 IN A 198.51.100.2",
				"www.example.org. 20 IN AAAA 2001:db8::1",
			},
		}},
		{name: "MX target below a zone cut gets no additional", Case: dnstest.Case{
			Qname: "mx.example.org.", Qtype: dns.TypeMX, Authoritative: true,
			Answer: []string{"mx.example.org. 300 IN MX 10 ns.sub.example.org."},
		}},
		{name: "SRV adds target address", Case: dnstest.Case{
			Qname: "_sip._tcp.example.org.", Qtype: dns.TypeSRV, Authoritative: true,
			Answer: []string{"_sip._tcp.example.org. 300 IN SRV 10 5 5060 mail.example.org."},
			Extra:  []string{mailA},
		}},
		{name: "TXT", Case: dnstest.Case{
			Qname: "example.org.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []string{`example.org. 3600 IN TXT "v=spf1 -all"`},
		}},
	})
}

func TestAnswerNegative(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{name: "NXDOMAIN has the SOA with the negative TTL", Case: dnstest.Case{
			Qname: "nothere.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{orgSOA},
		}},
		{name: "NXDOMAIN below an existing name", Case: dnstest.Case{
			Qname: "x.mail.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{orgSOA},
		}},
		{name: "NODATA", Case: dnstest.Case{
			Qname: "mail.example.org.", Qtype: dns.TypeAAAA, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "empty non-terminal is NODATA", Case: dnstest.Case{
			Qname: "b.c.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "empty non-terminal higher up is NODATA", Case: dnstest.Case{
			Qname: "c.example.org.", Qtype: dns.TypeTXT, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "negative TTL of the other zone", Case: dnstest.Case{
			Qname: "nothere.example.net.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{netSOA},
		}},
		{name: "outside every zone is REFUSED", Case: dnstest.Case{
			Qname: "www.example.com.", Qtype: dns.TypeA, Rcode: dns.RcodeRefused,
		}},
		{name: "parent of a zone is REFUSED", Case: dnstest.Case{
			Qname: "org.", Qtype: dns.TypeNS, Rcode: dns.RcodeRefused,
		}},
	})
}

func TestAnswerCNAME(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{name: "followed in zone", Case: dnstest.Case{
			Qname: "alias.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"alias.example.org. 300 IN CNAME mail.example.org.", mailA},
		}},
		{name: "chain", Case: dnstest.Case{
			Qname: "chain.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{
				"chain.example.org. 300 IN CNAME alias.example.org.",
				"alias.example.org. 300 IN CNAME mail.example.org.",
				mailA,
			},
		}},
		{name: "qtype CNAME is not followed", Case: dnstest.Case{
			Qname: "alias.example.org.", Qtype: dns.TypeCNAME, Authoritative: true,
			Answer: []string{"alias.example.org. 300 IN CNAME mail.example.org."},
		}},
		{name: "target without the type is NODATA", Case: dnstest.Case{
			Qname: "alias.example.org.", Qtype: dns.TypeAAAA, Authoritative: true,
			Answer: []string{"alias.example.org. 300 IN CNAME mail.example.org."},
			Ns:     []string{orgSOA},
		}},
		{name: "target that does not exist is NXDOMAIN", Case: dnstest.Case{
			Qname: "dangling.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Answer: []string{"dangling.example.org. 300 IN CNAME nothere.example.org."},
			Ns:     []string{orgSOA},
		}},
		{name: "loop stops after one turn", Case: dnstest.Case{
			Qname: "loop1.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{
				"loop1.example.org. 300 IN CNAME loop2.example.org.",
				"loop2.example.org. 300 IN CNAME LOOP1.example.org.",
			},
		}},
		{name: "chain is bounded at 8 hops", Case: dnstest.Case{
			Qname: "hop1.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{
				"hop1.example.org. 300 IN CNAME hop2.example.org.",
				"hop2.example.org. 300 IN CNAME hop3.example.org.",
				"hop3.example.org. 300 IN CNAME hop4.example.org.",
				"hop4.example.org. 300 IN CNAME hop5.example.org.",
				"hop5.example.org. 300 IN CNAME hop6.example.org.",
				"hop6.example.org. 300 IN CNAME hop7.example.org.",
				"hop7.example.org. 300 IN CNAME hop8.example.org.",
				"hop8.example.org. 300 IN CNAME hop9.example.org.",
			},
		}},
		{name: "chain of 8 from the second hop is whole", Case: dnstest.Case{
			Qname: "hop2.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{
				"hop2.example.org. 300 IN CNAME hop3.example.org.",
				"hop3.example.org. 300 IN CNAME hop4.example.org.",
				"hop4.example.org. 300 IN CNAME hop5.example.org.",
				"hop5.example.org. 300 IN CNAME hop6.example.org.",
				"hop6.example.org. 300 IN CNAME hop7.example.org.",
				"hop7.example.org. 300 IN CNAME hop8.example.org.",
				"hop8.example.org. 300 IN CNAME hop9.example.org.",
				"hop9.example.org. 300 IN CNAME mail.example.org.",
				mailA,
			},
		}},
		{name: "target outside our zones ends the chain", Case: dnstest.Case{
			Qname: "out.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"out.example.org. 300 IN CNAME www.example.com."},
		}},
		{name: "followed into another of our zones", Case: dnstest.Case{
			Qname: "cross.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"cross.example.org. 300 IN CNAME host.example.net.", "host.example.net. 300 IN A 203.0.113.10"},
		}},
		{name: "NXDOMAIN in the other zone has that zone's SOA", Case: dnstest.Case{
			Qname: "cross-nx.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Answer: []string{
				"cross-nx.example.org. 300 IN CNAME gone.example.net.",
				"gone.example.net. 300 IN CNAME missing.example.net.",
			},
			Ns: []string{netSOA},
		}},
		{name: "to a service owner", Case: dnstest.Case{
			Qname: "svcalias.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: append([]string{"svcalias.example.org. 300 IN CNAME www.example.org."}, wwwAms...),
		}},
		{name: "to a service owner follows failover", health: amsDown, Case: dnstest.Case{
			Qname: "svcalias.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{
				"svcalias.example.org. 300 IN CNAME www.example.org.",
				"www.example.org. 20 IN A 198.51.100.1", "www.example.org. 20 IN A 198.51.100.2",
			},
		}},
		{name: "to a service that answers SERVFAIL is SERVFAIL",
			health: down("strict.example.org/ams/192.0.2.31", "strict.example.org/ams/192.0.2.32"), Case: dnstest.Case{
				Qname: "strictalias.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure,
			}},
		{name: "into a delegation ends with the referral", Case: dnstest.Case{
			Qname: "refalias.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"refalias.example.org. 300 IN CNAME deep.sub.example.org."},
			Ns:     []string{"sub.example.org. 3600 IN NS ns.sub.example.org.", "sub.example.org. 3600 IN NS ns.example.net."},
			Extra:  []string{"ns.sub.example.org. 3600 IN A 192.0.2.100", "ns.example.net. 3600 IN A 203.0.113.53"},
		}},
	})
}

func TestAnswerWildcard(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{name: "synthesized with the qname as owner", Case: dnstest.Case{
			Qname: "foo.wild.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"foo.wild.example.org. 60 IN A 192.0.2.80"},
		}},
		{name: "synthesized several labels down", Case: dnstest.Case{
			Qname: "a.b.wild.example.org.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []string{`a.b.wild.example.org. 60 IN TXT "wild"`},
		}},
		{name: "no data of the type at the wildcard is NODATA", Case: dnstest.Case{
			Qname: "foo.wild.example.org.", Qtype: dns.TypeMX, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "does not match an existing name", Case: dnstest.Case{
			Qname: "exists.wild.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "does not match below an existing name", Case: dnstest.Case{
			Qname: "x.exists.wild.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{orgSOA},
		}},
		{name: "does not match the empty non-terminal above it", Case: dnstest.Case{
			Qname: "wild.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "wildcard CNAME is followed", Case: dnstest.Case{
			Qname: "foo.cw.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"foo.cw.example.org. 60 IN CNAME mail.example.org.", mailA},
		}},
		{name: "wildcard that is an empty non-terminal gives NODATA", Case: dnstest.Case{
			Qname: "foo.we.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "asked literally", Case: dnstest.Case{
			Qname: "*.wild.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"*.wild.example.org. 60 IN A 192.0.2.80"},
		}},
		{name: "wildcard service owner", Case: dnstest.Case{
			Qname: "any.svcwild.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"any.svcwild.example.org. 30 IN A 192.0.2.41"},
		}},
	})
}

func TestAnswerDelegation(t *testing.T) {
	subNS := []string{"sub.example.org. 3600 IN NS ns.sub.example.org.", "sub.example.org. 3600 IN NS ns.example.net."}
	subGlue := []string{"ns.sub.example.org. 3600 IN A 192.0.2.100", "ns.example.net. 3600 IN A 203.0.113.53"}
	runAnswerCases(t, []answerCase{
		{name: "below the cut", Case: dnstest.Case{
			Qname: "www.sub.example.org.", Qtype: dns.TypeA,
			Ns: subNS, Extra: subGlue,
		}},
		{name: "at the cut", Case: dnstest.Case{
			Qname: "sub.example.org.", Qtype: dns.TypeA,
			Ns: subNS, Extra: subGlue,
		}},
		{name: "NS at the cut is a referral too", Case: dnstest.Case{
			Qname: "sub.example.org.", Qtype: dns.TypeNS,
			Ns: subNS, Extra: subGlue,
		}},
		{name: "glue name itself is below the cut", Case: dnstest.Case{
			Qname: "ns.sub.example.org.", Qtype: dns.TypeA,
			Ns: subNS, Extra: subGlue,
		}},
		{name: "IPv6 glue", Case: dnstest.Case{
			Qname: "x.nods.example.org.", Qtype: dns.TypeA,
			Ns:    []string{"nods.example.org. 3600 IN NS ns.nods.example.org."},
			Extra: []string{"ns.nods.example.org. 3600 IN AAAA 2001:db8::100"},
		}},
		{name: "DS at the cut is answered by the parent", Case: dnstest.Case{
			Qname: "sub.example.org.", Qtype: dns.TypeDS, Authoritative: true,
			Answer: []string{"sub.example.org. 3600 IN DS 12345 13 2 3F3E2D1C0B0A09080706050403020100F0E1D2C3B4A5968778695A4B3C2D1E0F"},
		}},
		{name: "DS at a cut without DS is NODATA", Case: dnstest.Case{
			Qname: "nods.example.org.", Qtype: dns.TypeDS, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "DS below the cut is a referral", Case: dnstest.Case{
			Qname: "x.sub.example.org.", Qtype: dns.TypeDS,
			Ns: subNS, Extra: subGlue,
		}},
		{name: "child zone we serve answers for itself", Case: dnstest.Case{
			Qname: "hosted.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"hosted.example.org. 300 IN A 192.0.2.200"},
		}},
		{name: "child zone we serve has its own negative answers", Case: dnstest.Case{
			Qname: "x.hosted.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{hostedSOA},
		}},
		{name: "DS of a child zone we serve comes from the parent", Case: dnstest.Case{
			Qname: "hosted.example.org.", Qtype: dns.TypeDS, Authoritative: true,
			Answer: []string{"hosted.example.org. 3600 IN DS 54321 13 2 0F1E2D3C4B5A69788796A5B4C3D2E1F000102030405060708090A0B0C0D1E3F3"},
		}},
	})
}

func TestAnswerService(t *testing.T) {
	fra := []string{"www.example.org. 20 IN A 198.51.100.1", "www.example.org. 20 IN A 198.51.100.2"}
	allDown := health{}
	for _, id := range []string{"ams/192.0.2.1", "ams/192.0.2.2", "ams/2001:db8::1", "fra/198.51.100.1", "fra/198.51.100.2"} {
		allDown["www.example.org/"+id] = false
	}
	runAnswerCases(t, []answerCase{
		{name: "A from the first site, sorted", Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: wwwAms,
		}},
		{name: "AAAA from the first site", Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeAAAA, Authoritative: true,
			Answer: []string{"www.example.org. 20 IN AAAA 2001:db8::1"},
		}},
		{name: "only up endpoints", health: down("www.example.org/ams/192.0.2.1"), Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"www.example.org. 20 IN A 192.0.2.2"},
		}},
		// Sites are chosen per family: the IPv6 endpoint that is up does
		// not keep the site for IPv4 (the old rule counted both together
		// and answered NODATA here).
		{name: "v4 down fails A over though v6 is up", health: down("www.example.org/ams/192.0.2.1", "www.example.org/ams/192.0.2.2"), Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: fra,
		}},
		{name: "v4 down leaves AAAA at the site", health: down("www.example.org/ams/192.0.2.1", "www.example.org/ams/192.0.2.2"), Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeAAAA, Authoritative: true,
			Answer: []string{"www.example.org. 20 IN AAAA 2001:db8::1"},
		}},
		{name: "fails over to the second site", health: amsDown, Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: fra,
		}},
		// The only site with IPv6 is down: AAAA follows all_down (all),
		// where the old rule chose fra for both families and answered
		// NODATA.
		{name: "AAAA when the only IPv6 site is down follows all_down", health: amsDown, Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeAAAA, Authoritative: true,
			Answer: []string{"www.example.org. 20 IN AAAA 2001:db8::1"},
		}},
		{name: "no IPv6 anywhere is NODATA with the service TTL", Case: dnstest.Case{
			Qname: "strict.example.org.", Qtype: dns.TypeAAAA, Authoritative: true,
			Ns: []string{svcSOA(10)},
		}},
		{name: "drained site is skipped", drains: drains{"www.example.org.|ams": true}, Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: fra,
		}},
		{name: "all down serves all", health: allDown, Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: append(append([]string{}, wwwAms...), fra...),
		}},
		{name: "all down with servfail policy", health: down("strict.example.org/ams/192.0.2.31", "strict.example.org/ams/192.0.2.32"), Case: dnstest.Case{
			Qname: "strict.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure,
		}},
		{name: "servfail policy with enough up", health: down("strict.example.org/ams/192.0.2.32"), Case: dnstest.Case{
			Qname: "strict.example.org.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []string{"strict.example.org. 10 IN A 192.0.2.31"},
		}},
		{name: "other types come from static data", Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []string{`www.example.org. 300 IN TXT "static data at a service owner"`},
		}},
		{name: "other types without static data are NODATA with the service TTL", Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeMX, Authoritative: true,
			Ns: []string{svcSOA(20)},
		}},
		{name: "other types at a service owner without static data", Case: dnstest.Case{
			Qname: "strict.example.org.", Qtype: dns.TypeTXT, Authoritative: true,
			Ns: []string{svcSOA(10)},
		}},
		{name: "below a service owner is NXDOMAIN", Case: dnstest.Case{
			Qname: "x.www.example.org.", Qtype: dns.TypeA, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{orgSOA},
		}},
	})
}

// TestAnswerANY documents the RFC 8482 choice: one RRset, the lowest type
// number at the name, or a service's selected addresses.
func TestAnswerANY(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{name: "single RRset", Case: dnstest.Case{
			Qname: "ns1.example.org.", Qtype: dns.TypeANY, Authoritative: true,
			Answer: []string{"ns1.example.org. 3600 IN A 192.0.2.53"},
		}},
		{name: "apex gives the NS RRset with its additional data", Case: dnstest.Case{
			Qname: "example.org.", Qtype: dns.TypeANY, Authoritative: true,
			Answer: []string{"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.net."},
			Extra: []string{
				"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53",
				"ns2.example.net. 3600 IN A 203.0.113.54",
			},
		}},
		{name: "CNAME is not followed", Case: dnstest.Case{
			Qname: "alias.example.org.", Qtype: dns.TypeANY, Authoritative: true,
			Answer: []string{"alias.example.org. 300 IN CNAME mail.example.org."},
		}},
		{name: "service owner gives its selection, both families", Case: dnstest.Case{
			Qname: "www.example.org.", Qtype: dns.TypeANY, Authoritative: true,
			Answer: wwwAll,
		}},
		{name: "wildcard", Case: dnstest.Case{
			Qname: "foo.wild.example.org.", Qtype: dns.TypeANY, Authoritative: true,
			Answer: []string{"foo.wild.example.org. 60 IN A 192.0.2.80"},
		}},
		{name: "empty non-terminal is NODATA", Case: dnstest.Case{
			Qname: "c.example.org.", Qtype: dns.TypeANY, Authoritative: true,
			Ns: []string{orgSOA},
		}},
		{name: "NXDOMAIN", Case: dnstest.Case{
			Qname: "nothere.example.org.", Qtype: dns.TypeANY, Authoritative: true, Rcode: dns.RcodeNameError,
			Ns: []string{orgSOA},
		}},
	})
}

// dualSet serves mixed.example.org: dc1 has one IPv4 and one IPv6
// endpoint, dc2 IPv6 only, dc3 IPv4 only; and v4only.example.org with a
// TTL above the zone's negative TTL.
func dualSet(t *testing.T) *zones.Set {
	org := zones.NewZone("example.org.", "example.org.zone", parseZone(t, exampleOrg))
	one := zones.Threshold{Count: 1}
	return zones.NewSet([]*zones.Zone{org}, []*zones.Service{
		{Name: "mixed.example.org.", Policy: zones.Failover, TTL: 20, MinHealthy: one, AllDown: zones.AllDownServfail,
			Sites: []zones.ServiceSite{
				{Site: "dc1", Endpoints: endpoints("mixed.example.org", "dc1", "192.0.2.1", "2001:db8::1")},
				{Site: "dc2", Endpoints: endpoints("mixed.example.org", "dc2", "2001:db8::2")},
				{Site: "dc3", Endpoints: endpoints("mixed.example.org", "dc3", "192.0.2.3")},
			}},
		{Name: "v4only.example.org.", Policy: zones.Failover, TTL: 600, MinHealthy: one,
			Sites: []zones.ServiceSite{{Site: "dc1", Endpoints: endpoints("v4only.example.org", "dc1", "192.0.2.9")}}},
	}, "test")
}

// TestAnswerDualStack: a site is chosen per asked family, among the sites
// that have endpoints of that family.
func TestAnswerDualStack(t *testing.T) {
	const (
		a1   = "mixed.example.org. 20 IN A 192.0.2.1"
		a3   = "mixed.example.org. 20 IN A 192.0.2.3"
		aaa1 = "mixed.example.org. 20 IN AAAA 2001:db8::1"
		aaa2 = "mixed.example.org. 20 IN AAAA 2001:db8::2"
	)
	v6down := down("mixed.example.org/dc1/2001:db8::1")
	runAnswerCasesOn(t, dualSet(t), []answerCase{
		{name: "A from dc1", Case: dnstest.Case{Qname: "mixed.example.org.", Qtype: dns.TypeA, Authoritative: true, Answer: []string{a1}}},
		{name: "AAAA from dc1", Case: dnstest.Case{Qname: "mixed.example.org.", Qtype: dns.TypeAAAA, Authoritative: true, Answer: []string{aaa1}}},
		// The case: dc1's IPv4 is up and its only IPv6 endpoint
		// down; AAAA goes to dc2 (the old rule answered NODATA).
		{name: "dc1 v6 down: AAAA from dc2", health: v6down, Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeAAAA, Authoritative: true, Answer: []string{aaa2}}},
		{name: "dc1 v6 down: A stays at dc1", health: v6down, Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeA, Authoritative: true, Answer: []string{a1}}},
		{name: "dc1 v4 down: A passes over dc2, which has no IPv4, to dc3", health: down("mixed.example.org/dc1/192.0.2.1"), Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeA, Authoritative: true, Answer: []string{a3}}},
		{name: "ANY: each family from its own site", health: v6down, Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeANY, Authoritative: true, Answer: []string{a1, aaa2}}},
		{name: "every IPv6 endpoint down: the all-down policy of IPv6 only", health: down("mixed.example.org/dc1/2001:db8::1", "mixed.example.org/dc2/2001:db8::2"), Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeAAAA, Rcode: dns.RcodeServerFailure}},
		{name: "every IPv6 endpoint down: A unaffected", health: down("mixed.example.org/dc1/2001:db8::1", "mixed.example.org/dc2/2001:db8::2"), Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeA, Authoritative: true, Answer: []string{a1}}},
		{name: "no IPv6 anywhere: NODATA whatever the health, not SERVFAIL", health: allDown{}, Case: dnstest.Case{
			Qname: "v4only.example.org.", Qtype: dns.TypeAAAA, Authoritative: true, Ns: []string{orgSOA}}},
		{name: "a service TTL above the negative TTL leaves it", Case: dnstest.Case{
			Qname: "v4only.example.org.", Qtype: dns.TypeTXT, Authoritative: true, Ns: []string{orgSOA}}},
		{name: "NODATA for another type at a service has the service TTL", Case: dnstest.Case{
			Qname: "mixed.example.org.", Qtype: dns.TypeMX, Authoritative: true, Ns: []string{svcSOA(20)}}},
	})
}

// TestServiceNegativeTTLAcrossPublishes checks that a publish with the same
// zones and new health (which reuses what depends on the zones only) keeps
// the service TTL on negative answers at service names.
func TestServiceNegativeTTLAcrossPublishes(t *testing.T) {
	r, _ := newResolver(t, Config{})
	w := dnstest.NewRecorder("192.0.2.9")
	set := testSet(t)
	nodata := dnstest.Case{Qname: "strict.example.org.", Qtype: dns.TypeAAAA, Authoritative: true, Ns: []string{svcSOA(10)}}
	for i, h := range []Health{nil, amsDown, health{}} {
		r.Publish(State{Zones: set, Health: h})
		msgs := serve(r, w, nodata.Msg())
		if len(msgs) != 1 {
			t.Fatalf("publish %d: %d messages written, want 1", i, len(msgs))
		}
		nodata.Check(t, msgs[0])
	}
}
