package zones_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// goodZones are the zones the services fixtures are checked against.
func goodZones() []zones.ZoneConfig {
	return []zones.ZoneConfig{
		{Origin: "example.com", File: "testdata/good/example.com.zone", Source: "gslbd.yaml:10"},
		{Origin: "child.example.com.", File: "testdata/good/child.example.com.zone", Source: "gslbd.yaml:12"},
		{
			Origin: "example.net.", File: "testdata/good/example.net.zone", AllowInclude: true, Source: "gslbd.yaml:14",
			AllowTransfer: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		},
	}
}

// messages splits what Load returned into one message per problem.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func checkMessages(t *testing.T, err error, want []string) {
	t.Helper()
	got := messages(err)
	if !slices.Equal(got, want) {
		t.Errorf("Load() errors =\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestLoadGood(t *testing.T) {
	set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: "testdata/good/services.yaml"})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}

	var origins []string
	for _, z := range set.Zones() {
		origins = append(origins, z.Origin)
	}
	if want := []string{"child.example.com.", "example.com.", "example.net."}; !slices.Equal(origins, want) {
		t.Errorf("Zones() = %v, want %v", origins, want)
	}

	names := []struct {
		qname, zone string
		types       []uint16 // nil: name does not exist
		empty       bool
	}{
		{"example.com.", "example.com.", []uint16{dns.TypeA, dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeTXT, dns.TypeCAA}, false},
		{"www.example.com.", "example.com.", []uint16{dns.TypeCNAME}, false},
		{"*.wild.example.com.", "example.com.", []uint16{dns.TypeA}, false},
		{"a.b.example.com.", "example.com.", []uint16{}, true}, // empty non-terminal
		{"deep.a.b.example.com.", "example.com.", []uint16{dns.TypeTXT}, false},
		{"lb.eu.example.com.", "example.com.", []uint16{dns.TypeTXT}, false}, // after $ORIGIN
		{"sub.example.com.", "example.com.", []uint16{dns.TypeNS, dns.TypeDS}, false},
		{"ns.sub.example.com.", "example.com.", []uint16{dns.TypeA}, false}, // glue
		{"www.child.example.com.", "child.example.com.", []uint16{dns.TypeA}, false},
		{"www.example.net.", "example.net.", []uint16{dns.TypeA}, false},     // $INCLUDE
		{"extra.example.net.", "example.net.", []uint16{dns.TypeTXT}, false}, // nested $INCLUDE
		{"mail.example.net.", "example.net.", []uint16{dns.TypeMX}, false},   // $INCLUDE with origin
		{"mx.mail.example.net.", "example.net.", []uint16{dns.TypeA}, false}, // relative to it
		{"after.example.net.", "example.net.", []uint16{dns.TypeA}, false},   // origin restored
		{"talk.example.com.", "example.com.", []uint16{dns.TypeTXT}, false},  // service beside TXT
		{"db.example.com.", "example.com.", []uint16{}, false},               // service only
		{"nothing.example.com.", "example.com.", nil, false},
	}
	for _, tc := range names {
		z := set.Zone(tc.qname)
		if z == nil || z.Origin != tc.zone {
			t.Errorf("Zone(%q) = %v, want %s", tc.qname, z, tc.zone)
			continue
		}
		n, ok := z.Lookup(tc.qname)
		if ok != (tc.types != nil) {
			t.Errorf("Lookup(%q) exists = %v, want %v", tc.qname, ok, tc.types != nil)
			continue
		}
		if !ok {
			continue
		}
		want := slices.Clone(tc.types)
		slices.Sort(want)
		if got := n.Types(); !slices.Equal(got, want) {
			t.Errorf("Lookup(%q).Types() = %v, want %v", tc.qname, got, want)
		}
		if n.Empty() != tc.empty {
			t.Errorf("Lookup(%q).Empty() = %v, want %v", tc.qname, n.Empty(), tc.empty)
		}
	}

	com := set.Zone("example.com.")
	if com.SOA == nil || com.SOA.Serial != 2024060101 || com.SOA.Hdr.Ttl != 3600 {
		t.Errorf("example.com. SOA = %v, want serial 2024060101 and TTL 3600 from $TTL", com.SOA)
	}
	if got := com.Records()[0]; got != dns.RR(com.SOA) {
		t.Errorf("Records()[0] = %v, want the SOA", got)
	}
	if n, _ := com.Lookup("example.com."); n.RRset(dns.TypeA)[0].Header().Ttl != 300 {
		t.Errorf("apex A TTL = %d, want 300", n.RRset(dns.TypeA)[0].Header().Ttl)
	}
	net := set.Zone("example.net.")
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}; !slices.Equal(net.AllowTransfer, want) {
		t.Errorf("AllowTransfer = %v, want %v", net.AllowTransfer, want)
	}
	if net.File != "testdata/good/example.net.zone" {
		t.Errorf("File = %q", net.File)
	}
}

func TestLoadServices(t *testing.T) {
	set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: "testdata/good/services.yaml"})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	ep := func(id, addr string) zones.Endpoint {
		return zones.Endpoint{ID: id, Addr: netip.MustParseAddr(addr)}
	}
	talkCheck := zones.Check{
		Kind: zones.CheckHTTPS, Port: 8443, Interval: time.Second, Timeout: 400 * time.Millisecond, Rise: 3, Fall: 1,
		Method: "GET", Path: "/healthz", Host: "talk.example.com", ExpectStatus: []int{200, 204}, BodyContains: "ok",
		InsecureSkipVerify: true,
	}
	apiCheck := zones.Check{
		Kind: zones.CheckHTTP, Port: 8080, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2,
		Method: "GET", Path: "/healthz",
	}
	dbCheck := zones.Check{Kind: zones.CheckTCP, Port: 5432, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2}
	want := []*zones.Service{
		{
			Name: "api.example.net.", Zone: "example.net.", Policy: zones.Failover, TTL: 20,
			MinHealthy: zones.Threshold{Count: 1}, AllDown: zones.AllDownAll,
			Sites: []zones.ServiceSite{
				{Site: "dc3", Check: apiCheck, Endpoints: []zones.Endpoint{ep("api.example.net/dc3/127.0.3.10", "127.0.3.10")}},
			},
		},
		{
			Name: "db.example.com.", Zone: "example.com.", Policy: zones.Failover, TTL: 20,
			MinHealthy: zones.Threshold{Count: 2}, AllDown: zones.AllDownServfail,
			Sites: []zones.ServiceSite{
				{Site: "dc1", Check: dbCheck, Endpoints: []zones.Endpoint{
					ep("db.example.com/dc1/127.0.1.20", "127.0.1.20"),
					ep("db.example.com/dc1/127.0.1.21", "127.0.1.21"),
				}},
			},
		},
		{
			Name: "talk.example.com.", Zone: "example.com.", Policy: zones.Failover, TTL: 30,
			MinHealthy: zones.Threshold{PerMillion: 500_000}, AllDown: zones.AllDownFirst,
			Sites: []zones.ServiceSite{
				{Site: "dc2", Check: talkCheck, Endpoints: []zones.Endpoint{
					ep("talk.example.com/dc2/127.0.2.10", "127.0.2.10"),
					ep("talk.example.com/dc2/127.0.2.11", "127.0.2.11"),
				}},
				{Site: "dc1", Check: talkCheck, Endpoints: []zones.Endpoint{
					ep("talk.example.com/dc1/127.0.1.10", "127.0.1.10"),
					ep("talk.example.com/dc1/::1", "::1"),
				}},
			},
		},
	}
	if got := set.Services(); !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			if i >= len(got) || i >= len(want) || !reflect.DeepEqual(got[i], want[i]) {
				var g, w any
				if i < len(got) {
					g = *got[i]
				}
				if i < len(want) {
					w = *want[i]
				}
				t.Errorf("Services()[%d] =\n\t%+v\nwant\n\t%+v", i, g, w)
			}
		}
	}
	if got := set.Service("talk.example.com."); got == nil || got.Name != "talk.example.com." {
		t.Errorf("Service(talk.example.com.) = %v", got)
	}
	n, _ := set.Zone("db.example.com.").Lookup("db.example.com.")
	if n.Service() != set.Service("db.example.com.") || n.Empty() {
		t.Errorf("Lookup(db.example.com.).Service() = %v, want the service", n.Service())
	}
}

// writeServices writes a services file to a temporary directory.
func writeServices(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServiceDefaults(t *testing.T) {
	builtin := zones.Check{
		Kind: zones.CheckHTTP, Port: 80, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond,
		Rise: 2, Fall: 2, Method: "GET", Path: "/",
	}
	with := func(f func(*zones.Check)) zones.Check {
		c := builtin
		f(&c)
		return c
	}
	tests := []struct {
		name       string
		yaml       string
		wantCheck  zones.Check
		wantMin    zones.Threshold
		wantTTL    uint32
		wantAll    zones.AllDown
		wantSites  []string
		wantPolicy zones.Policy
	}{{
		name:      "nothing set",
		yaml:      "sites: [dc1, dc2]\nservices:\n  talk.example.com:\n    sites: {dc2: [127.0.2.1], dc1: [127.0.1.1]}\n",
		wantCheck: builtin, wantMin: zones.Threshold{Count: 1}, wantTTL: 20, wantAll: zones.AllDownAll,
		wantSites: []string{"dc1", "dc2"}, wantPolicy: zones.Failover,
	}, {
		name:      "https default port",
		yaml:      "sites: [dc1]\ndefaults:\n  check: {type: https}\nservices:\n  talk.example.com:\n    sites: {dc1: [127.0.1.1]}\n",
		wantCheck: with(func(c *zones.Check) { c.Kind, c.Port = zones.CheckHTTPS, 443 }),
		wantMin:   zones.Threshold{Count: 1}, wantTTL: 20, wantAll: zones.AllDownAll, wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name: "override merged field by field",
		yaml: `sites: [dc1]
defaults:
  check: {type: https, port: 8443, path: /healthz, insecure_skip_verify: true, rise: 5}
services:
  talk.example.com:
    ttl: 0
    check: {type: http, rise: 1}
    sites: {dc1: [127.0.1.1]}
`,
		// insecure_skip_verify means nothing without TLS.
		wantCheck: with(func(c *zones.Check) { c.Port, c.Path, c.Rise = 8443, "/healthz", 1 }),
		wantMin:   zones.Threshold{Count: 1}, wantTTL: 0, wantAll: zones.AllDownAll, wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name: "tcp drops inherited http settings",
		yaml: `sites: [dc1]
defaults:
  check: {path: /healthz, expect_status: [204]}
services:
  talk.example.com:
    check: {type: tcp, port: 22}
    sites: {dc1: [127.0.1.1]}
`,
		wantCheck: zones.Check{Kind: zones.CheckTCP, Port: 22, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2},
		wantMin:   zones.Threshold{Count: 1}, wantTTL: 20, wantAll: zones.AllDownAll, wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name: "reuse_connection off",
		yaml: `sites: [dc1]
defaults:
  check: {reuse_connection: false}
services:
  talk.example.com:
    sites: {dc1: [127.0.1.1]}
`,
		wantCheck: with(func(c *zones.Check) { c.DisableReuse = true }),
		wantMin:   zones.Threshold{Count: 1}, wantTTL: 20, wantAll: zones.AllDownAll, wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name: "tcp drops an inherited reuse_connection",
		yaml: `sites: [dc1]
defaults:
  check: {reuse_connection: false}
services:
  talk.example.com:
    check: {type: tcp, port: 22}
    sites: {dc1: [127.0.1.1]}
`,
		wantCheck: zones.Check{Kind: zones.CheckTCP, Port: 22, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2},
		wantMin:   zones.Threshold{Count: 1}, wantTTL: 20, wantAll: zones.AllDownAll, wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name:      "fractional percentage",
		yaml:      "sites: [dc1]\nservices:\n  talk.example.com:\n    min_healthy: 12.5%\n    sites: {dc1: [127.0.1.1]}\n",
		wantCheck: builtin, wantMin: zones.Threshold{PerMillion: 125_000}, wantTTL: 20, wantAll: zones.AllDownAll,
		wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name:      "hundred percent",
		yaml:      "sites: [dc1]\nservices:\n  talk.example.com:\n    min_healthy: \"100%\"\n    sites: {dc1: [127.0.1.1]}\n",
		wantCheck: builtin, wantMin: zones.Threshold{PerMillion: 1_000_000}, wantTTL: 20, wantAll: zones.AllDownAll,
		wantSites: []string{"dc1"}, wantPolicy: zones.Failover,
	}, {
		name:      "order picks a subset of sites",
		yaml:      "sites: [dc1, dc2, dc3]\nservices:\n  talk.example.com:\n    order: [dc3, dc2, dc1]\n    sites: {dc1: [127.0.1.1], dc3: [127.0.3.1]}\n",
		wantCheck: builtin, wantMin: zones.Threshold{Count: 1}, wantTTL: 20, wantAll: zones.AllDownAll,
		wantSites: []string{"dc3", "dc1"}, wantPolicy: zones.Failover,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: writeServices(t, tc.yaml)})
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			svc := set.Service("talk.example.com.")
			if svc == nil {
				t.Fatal("Service(talk.example.com.) = nil")
			}
			var sites []string
			for _, s := range svc.Sites {
				sites = append(sites, s.Site)
				if !reflect.DeepEqual(s.Check, tc.wantCheck) {
					t.Errorf("site %s check = %+v, want %+v", s.Site, s.Check, tc.wantCheck)
				}
			}
			if !slices.Equal(sites, tc.wantSites) {
				t.Errorf("sites = %v, want %v", sites, tc.wantSites)
			}
			if svc.MinHealthy != tc.wantMin || svc.TTL != tc.wantTTL || svc.AllDown != tc.wantAll || svc.Policy != tc.wantPolicy {
				t.Errorf("service = %+v, want min_healthy %+v, ttl %d, all_down %s, policy %s",
					*svc, tc.wantMin, tc.wantTTL, tc.wantAll, tc.wantPolicy)
			}
		})
	}
}

func TestLoadEmptyServices(t *testing.T) {
	for _, yaml := range []string{"", "# nothing yet\n", "sites: [dc1]\n"} {
		set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: writeServices(t, yaml)})
		if err != nil {
			t.Fatalf("Load(%q) = %v", yaml, err)
		}
		if got := set.Services(); len(got) != 0 {
			t.Errorf("Load(%q).Services() = %v, want none", yaml, got)
		}
	}
}

func TestHash(t *testing.T) {
	load := func(services string) string {
		t.Helper()
		set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: services})
		if err != nil {
			t.Fatalf("Load(%s) = %v", services, err)
		}
		return set.Hash()
	}
	a := load("testdata/good/services.yaml")
	if len(a) != 16 {
		t.Errorf("Hash() = %q, want 16 hex digits", a)
	}
	if b := load("testdata/good/services.yaml"); a != b {
		t.Errorf("Hash() = %s then %s for the same file", a, b)
	}
	if b := load("testdata/good/services-reformatted.yaml"); a != b {
		t.Errorf("Hash() = %s for services.yaml, %s for the same definitions reformatted", a, b)
	}
	orig, err := os.ReadFile("testdata/good/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []struct{ from, to string }{
		{"ttl: 30", "ttl: 31"},
		{"order: [dc2, dc1]", "order: [dc1, dc2]"},
		{"path: /healthz}", "path: /health}"},
		{"path: /healthz}", "path: /healthz, reuse_connection: false}"},
		{"127.0.2.10]", "127.0.2.12]"},
	} {
		changed := strings.Replace(string(orig), change.from, change.to, 1)
		if changed == string(orig) {
			t.Fatalf("%q not in services.yaml", change.from)
		}
		if b := load(writeServices(t, changed)); a == b {
			t.Errorf("Hash() unchanged after %q -> %q", change.from, change.to)
		}
	}
	noServices, err := zones.Load(zones.Config{Zones: goodZones()})
	if err != nil {
		t.Fatal(err)
	}
	if noServices.Hash() == "" || noServices.Hash() == a {
		t.Errorf("Hash() without services = %q", noServices.Hash())
	}
}

func TestLoadBadZones(t *testing.T) {
	zone := func(file string) []zones.ZoneConfig {
		return []zones.ZoneConfig{{Origin: "example.com.", File: "testdata/bad/zones/" + file, Source: "gslbd.yaml:3", AllowInclude: true}}
	}
	const d = "testdata/bad/zones/"
	tests := []struct {
		name  string
		zones []zones.ZoneConfig
		want  []string
	}{{
		name:  "syntax error",
		zones: zone("syntax.zone"),
		want:  []string{d + `syntax.zone: dns: bad A A: "192.0.2.300" at line: 5:17`},
	}, {
		name:  "no TTL at all",
		zones: zone("no-ttl.zone"),
		want:  []string{d + `no-ttl.zone: dns: missing TTL with no previous value: "SOA" at line: 1:6`},
	}, {
		name:  "include off",
		zones: []zones.ZoneConfig{{Origin: "example.com.", File: d + "include-off.zone"}},
		want:  []string{d + `include-off.zone: dns: $INCLUDE directive not allowed: "inc/hosts.zone" at line: 5:23`},
	}, {
		name:  "include missing",
		zones: zone("include-missing.zone"),
		want:  []string{d + "include-missing.zone:5: $INCLUDE: open " + d + "inc/missing.zone: no such file or directory"},
	}, {
		name:  "syntax error in included file",
		zones: zone("include-syntax.zone"),
		want:  []string{d + `inc/bad.zone: dns: bad MX Pref: "ten" at line: 3:12`},
	}, {
		name:  "no SOA",
		zones: zone("no-soa.zone"),
		want:  []string{d + "no-soa.zone:1: no SOA record at the zone apex example.com."},
	}, {
		name:  "SOA below the apex",
		zones: zone("soa-not-apex.zone"),
		want:  []string{d + "soa-not-apex.zone:5: SOA record for www.example.com. is not at the zone apex example.com."},
	}, {
		name:  "two SOA",
		zones: zone("two-soa.zone"),
		want:  []string{d + "two-soa.zone:5: more than one SOA record at the zone apex example.com."},
	}, {
		name:  "no NS",
		zones: zone("no-ns.zone"),
		want:  []string{d + "no-ns.zone:2: no NS records at the zone apex example.com."},
	}, {
		name:  "out of zone",
		zones: zone("out-of-zone.zone"),
		want:  []string{d + "out-of-zone.zone:5: A record for www.example.org. is outside zone example.com."},
	}, {
		name:  "CNAME at the apex",
		zones: zone("cname-apex.zone"),
		want:  []string{d + "cname-apex.zone:5: CNAME record at the zone apex example.com."},
	}, {
		name:  "two CNAMEs",
		zones: zone("cname-twice.zone"),
		want:  []string{d + "cname-twice.zone:6: more than one CNAME record for www.example.com."},
	}, {
		name:  "CNAME and other data",
		zones: zone("cname-other.zone"),
		want:  []string{d + "cname-other.zone:5: CNAME record for www.example.com. beside other data (A, TXT)"},
	}, {
		name:  "missing glue for a delegation",
		zones: zone("glue-delegation.zone"),
		want:  []string{d + "glue-delegation.zone:5: missing glue: name server ns.sub.example.com. has no A or AAAA record in the zone"},
	}, {
		name:  "missing address for an apex name server",
		zones: zone("glue-apex.zone"),
		want:  []string{d + "glue-apex.zone:4: missing glue: name server ns2.example.com. has no A or AAAA record in the zone"},
	}, {
		name:  "occluded",
		zones: zone("occluded.zone"),
		want: []string{
			d + "occluded.zone:7: TXT record for sub.example.com. is occluded by the delegation at sub.example.com.",
			d + "occluded.zone:8: A record for www.sub.example.com. is occluded by the delegation at sub.example.com.",
			d + "occluded.zone:9: DS record for www.sub.example.com. is occluded by the delegation at sub.example.com.",
		},
	}, {
		name: "hidden by a served child zone",
		zones: append(zone("hidden.zone"),
			zones.ZoneConfig{Origin: "child.example.com.", File: d + "child.zone"}),
		want: []string{d + "hidden.zone:5: A record for www.child.example.com. is hidden by zone child.example.com., which is also served"},
	}, {
		name:  "class",
		zones: zone("class.zone"),
		want:  []string{d + "class.zone:5: TXT record for version.example.com. has class CH; only IN is supported"},
	}, {
		name:  "meta type",
		zones: zone("meta.zone"),
		want:  []string{d + "meta.zone:5: ANY record for www.example.com.: type ANY cannot be zone data"},
	}, {
		name:  "no rdata",
		zones: zone("no-rdata.zone"),
		want:  []string{d + "no-rdata.zone:5: A record for www.example.com. has no data"},
	}, {
		name:  "cannot be encoded",
		zones: zone("encode.zone"),
		want:  []string{d + "encode.zone:5: RRSIG record for www.example.com. cannot be encoded: illegal base64 data at input byte 0"},
	}, {
		name:  "several problems in one file, in line order",
		zones: zone("many.zone"),
		want: []string{
			d + "many.zone:5: CNAME record for www.example.com. beside other data (A)",
			d + "many.zone:7: A record for out.example.org. is outside zone example.com.",
			d + "many.zone:8: missing glue: name server ns.sub.example.com. has no A or AAAA record in the zone",
			d + "many.zone:9: CNAME record at the zone apex example.com.",
		},
	}, {
		name:  "missing file",
		zones: zone("missing.zone"),
		want:  []string{"gslbd.yaml:3: zone example.com.: open " + d + "missing.zone: no such file or directory"},
	}, {
		name: "declarations",
		zones: []zones.ZoneConfig{
			{Origin: "example.com", File: "testdata/good/example.com.zone", Source: "gslbd.yaml:3"},
			{Origin: "Example.COM.", File: d + "child.zone", Source: "gslbd.yaml:5"},
			{Origin: "bad..origin", File: d + "child.zone", Source: "gslbd.yaml:7"},
			{Origin: "", File: d + "child.zone", Source: "gslbd.yaml:9"},
			{Origin: "example.org", Source: "gslbd.yaml:11"},
		},
		want: []string{
			"gslbd.yaml:5: zone example.com. is declared twice (also at gslbd.yaml:3)",
			`gslbd.yaml:7: zone "bad..origin": bad origin`,
			`gslbd.yaml:9: zone "": bad origin`,
			"gslbd.yaml:11: zone example.org.: no file",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := zones.Load(zones.Config{Zones: tc.zones})
			if set != nil {
				t.Errorf("Load() returned a Set with errors")
			}
			checkMessages(t, err, tc.want)
		})
	}
}

func TestLoadBadServices(t *testing.T) {
	const d = "testdata/bad/services/"
	const svc = `services["talk.example.com"]`
	tests := []struct {
		file string
		want []string
	}{{
		file: "regions.yaml",
		want: []string{
			d + `regions.yaml:4: regions.eu.networks[2]: bad network "198.51.100.1/24": host bits set (the network is 198.51.100.0/24)`,
			d + `regions.yaml:4: regions.eu.networks[3]: bad network "not-a-cidr": want a CIDR prefix such as 192.0.2.0/24`,
			d + `regions.yaml:4: regions.eu: network 192.0.2.128/25 overlaps 192.0.2.0/24 of region eu (line 4)`,
			d + `regions.yaml:5: regions.eu.order[1]: unknown site "dc9"`,
			d + `regions.yaml:7: regions.us: network 2001:db8:1::/48 overlaps 2001:db8::/32 of region us (line 7)`,
			d + `regions.yaml:13: services["near.example.com"].regions.asia: unknown region "asia"`,
			d + `regions.yaml:14: services["near.example.com"].regions.eu[1]: unknown site "dc7"`,
		},
	}, {
		file: "weights.yaml",
		want: []string{
			d + `weights.yaml:6: services["zero.example.com"].sites: every weight is 0: no site would take traffic`,
			d + `weights.yaml:11: services["cap.example.com"].sites.dc1.capacity: -1 out of range 1-1000000`,
			d + `weights.yaml:12: services["cap.example.com"].sites.dc2.capacity: 2 is below the weight 3`,
			d + `weights.yaml:16: services["fo.example.com"].sites.dc1: weight and capacity are for policy weighted`,
			d + `weights.yaml:20: services["cn.example.com"].sites.dc2: no cname: a CNAME service needs a cname on every site`,
			d + `weights.yaml:21: services["near.example.com"].policy: policy nearest needs regions (top-level regions:)`,
		},
	}, {
		file: "site-field.yaml",
		want: []string{d + `site-field.yaml:5: field colour not found in site (want endpoints, weight, capacity, cname)`},
	}, {
		file: "unknown-site.yaml",
		want: []string{d + "unknown-site.yaml:6: " + svc + ".sites.dc9: unknown site"},
	}, {
		file: "duplicate-endpoint.yaml",
		want: []string{d + "duplicate-endpoint.yaml:8: " + svc + ".sites.dc2[1]: duplicate endpoint 127.0.1.10 (also at line 5)"},
	}, {
		file: "bad-address.yaml",
		want: []string{
			d + "bad-address.yaml:5: " + svc + `.sites.dc1[1]: bad address: ParseAddr("127.0.1"): IPv4 address too short`,
			d + "bad-address.yaml:5: " + svc + `.sites.dc1[2]: bad address "fe80::1%eth0": zones are not allowed`,
			d + "bad-address.yaml:5: " + svc + `.sites.dc1[3]: bad address "::ffff:127.0.1.12": write the IPv4 address 127.0.1.12`,
			d + "bad-address.yaml:5: " + svc + `.sites.dc1[4]: bad address "0.0.0.0": unspecified`,
		},
	}, {
		file: "timeout.yaml",
		want: []string{d + "timeout.yaml:4: " + svc + ".check.timeout: timeout 1s must be less than interval 1s"},
	}, {
		// Reported once, where it is, not for each service using it.
		file: "defaults-timeout.yaml",
		want: []string{d + "defaults-timeout.yaml:4: defaults.check.timeout: timeout 600ms must be less than interval 500ms"},
	}, {
		file: "bad-port.yaml",
		want: []string{
			d + "bad-port.yaml:3: defaults.check.port: 0 out of range 1-65535",
			d + "bad-port.yaml:6: " + svc + ".check.port: 70000 out of range 1-65535",
		},
	}, {
		file: "policy.yaml",
		want: []string{
			d + "policy.yaml:4: " + svc + `.policy: unknown policy "roundrobin": want failover, weighted or nearest`,
			d + "policy.yaml:5: " + svc + `.all_down: unknown value "refuse": want all, first or servfail`,
		},
	}, {
		file: "min-healthy.yaml",
		want: []string{
			d + `min-healthy.yaml:4: services["a.example.com"].min_healthy: 0 must be at least 1`,
			d + `min-healthy.yaml:7: services["b.example.com"].min_healthy: "150%" must be above 0% and at most 100%`,
			d + `min-healthy.yaml:10: services["c.example.com"].min_healthy: want a count such as 2 or a percentage such as "50%"`,
			d + `min-healthy.yaml:13: services["d.example.com"].min_healthy: want a count such as 2 or a percentage such as "50%"`,
			d + `min-healthy.yaml:16: services["e.example.com"].min_healthy: "0%" must be above 0% and at most 100%`,
			d + `min-healthy.yaml:19: services["f.example.com"].min_healthy: want a count such as 2 or a percentage such as "50%"`,
			d + `min-healthy.yaml:22: services["g.example.com"].min_healthy: want a count such as 2 or a percentage such as "50%"`,
		},
	}, {
		file: "names.yaml",
		want: []string{
			d + `names.yaml:3: services["talk.example.org"]: talk.example.org. is not inside any loaded zone`,
			d + `names.yaml:5: services["www.sub.example.com"]: www.sub.example.com. is at or below the delegation at sub.example.com. (testdata/good/example.com.zone:27)`,
			d + `names.yaml:7: services["*.wild.example.com"]: wildcard names are not supported`,
			d + `names.yaml:9: services["mail.example.com"]: mail.example.com. collides with the A record at testdata/good/example.com.zone:17`,
			d + `names.yaml:11: services["www.example.com"]: www.example.com. collides with the CNAME record at testdata/good/example.com.zone:18`,
			d + `names.yaml:13: services["ns1.example.com"]: ns1.example.com. collides with the A record at testdata/good/example.com.zone:15`,
			d + `names.yaml:13: services["ns1.example.com"]: ns1.example.com. collides with the AAAA record at testdata/good/example.com.zone:16`,
			d + `names.yaml:17: services["DB.Example.COM."]: duplicate service db.example.com. (also at line 15)`,
			d + `names.yaml:19: services["bad..name"]: bad name`,
		},
	}, {
		file: "unknown-field.yaml",
		want: []string{
			d + "unknown-field.yaml:4: cannot unmarshal !!str `twenty` into int64",
			d + "unknown-field.yaml:6: field kind not found in type zones.checkSpec",
		},
	}, {
		file: "syntax.yaml",
		want: []string{d + "syntax.yaml:1: did not find expected ',' or ']'"},
	}, {
		file: "two-docs.yaml",
		want: []string{d + "two-docs.yaml:2: more than one YAML document"},
	}, {
		file: "sites.yaml",
		want: []string{
			d + `sites.yaml:1: sites[2]: duplicate site "dc1"`,
			d + `sites.yaml:1: sites[3]: bad site name "dc/3": use letters, digits, '-', '_' and '.'`,
			d + `sites.yaml:4: ` + svc + `.order[1]: unknown site "dc4"`,
			d + `sites.yaml:4: ` + svc + `.order[2]: duplicate site "dc2"`,
			d + `sites.yaml:6: ` + svc + `.sites.dc1: missing from order`,
			d + `sites.yaml:7: ` + svc + `.sites.dc2: no endpoints`,
			d + `sites.yaml:9: services["db.example.com"].sites: no sites`,
		},
	}, {
		file: "order.yaml",
		want: []string{d + "order.yaml:6: " + svc + ".sites.dc1: missing from order"},
	}, {
		file: "no-sites.yaml",
		want: []string{
			d + "no-sites.yaml:1: sites: no sites declared",
			d + "no-sites.yaml:4: " + svc + ".sites.dc1: unknown site",
		},
	}, {
		file: "check.yaml",
		want: []string{
			d + `check.yaml:4: defaults.check.type: a tcp check needs a port`,
			d + `check.yaml:9: services["db.example.com"].check.method: only for http and https checks`,
			d + `check.yaml:9: services["db.example.com"].check.path: only for http and https checks`,
			d + `check.yaml:9: services["db.example.com"].check.reuse_connection: only for http and https checks`,
			d + `check.yaml:14: services["web.example.com"].check.method: bad method "get"`,
			d + `check.yaml:15: services["web.example.com"].check.path: "healthz" must start with /`,
			d + `check.yaml:16: services["web.example.com"].check.expect_status: bad status 700`,
			d + `check.yaml:17: services["web.example.com"].check.rise: 0 must be at least 1`,
			d + `check.yaml:18: services["web.example.com"].check.fall: -1 must be at least 1`,
			d + `check.yaml:19: services["web.example.com"].check.interval: 0s must be positive`,
			d + `check.yaml:22: services["ftp.example.com"].check.type: unknown check type "ftp": want http, https or tcp`,
		},
	}, {
		file: "ttl.yaml",
		want: []string{
			d + "ttl.yaml:4: " + svc + ".ttl: -1 out of range 0-2147483647",
			d + `ttl.yaml:7: services["db.example.com"].ttl: 2147483648 out of range 0-2147483647`,
		},
	}, {
		file: "missing.yaml",
		want: []string{"services: open " + d + "missing.yaml: no such file or directory"},
	}}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: d + tc.file})
			if set != nil {
				t.Errorf("Load() returned a Set with errors")
			}
			checkMessages(t, err, tc.want)
		})
	}
}

// TestLoadAllAtOnce checks that problems in several zones and in the
// services file come back together, and that a zone which does not parse
// causes no second message about the services inside it.
func TestLoadAllAtOnce(t *testing.T) {
	const d = "testdata/bad/"
	cfg := zones.Config{
		Zones: []zones.ZoneConfig{
			{Origin: "example.com.", File: d + "zones/syntax.zone"},
			{Origin: "example.org.", File: d + "zones/missing.zone", Source: "gslbd.yaml:5"},
			{Origin: "example.net.", File: d + "zones/child.zone"},
		},
		ServicesFile: writeServices(t, `sites: [dc1]
services:
  talk.example.com:   # in a zone that does not parse: no message
    sites: {dc1: [127.0.1.10]}
  www.example.net:
    ttl: -5
    sites: {dc1: [127.0.1.11]}
`),
	}
	_, err := zones.Load(cfg)
	got := messages(err)
	want := []string{
		d + `zones/syntax.zone: dns: bad A A: "192.0.2.300" at line: 5:17`,
		"gslbd.yaml:5: zone example.org.: open " + d + "zones/missing.zone: no such file or directory",
		cfg.ServicesFile + `:6: services["www.example.net"].ttl: -5 out of range 0-2147483647`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Load() errors =\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}

	var pe *dns.ParseError
	if !errors.As(err, &pe) {
		t.Errorf("errors.As(err, *dns.ParseError) = false, want true")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false, want true")
	}
}

func TestIncludeAbsolutePaths(t *testing.T) {
	abs, err := filepath.Abs("testdata/bad/zones/include-syntax.zone")
	if err != nil {
		t.Fatal(err)
	}
	_, err = zones.Load(zones.Config{Zones: []zones.ZoneConfig{{Origin: "example.com.", File: abs, AllowInclude: true}}})
	want := filepath.Join(filepath.Dir(abs), "inc", "bad.zone") + `: dns: bad MX Pref: "ten" at line: 3:12`
	checkMessages(t, err, []string{want})

	good, err := filepath.Abs("testdata/good/example.net.zone")
	if err != nil {
		t.Fatal(err)
	}
	set, err := zones.Load(zones.Config{Zones: []zones.ZoneConfig{{Origin: "example.net.", File: good, AllowInclude: true}}})
	if err != nil {
		t.Fatalf("Load(%s) = %v", good, err)
	}
	if _, ok := set.Zone("extra.example.net.").Lookup("extra.example.net."); !ok {
		t.Errorf("nested $INCLUDE not loaded from an absolute path")
	}

	// An $INCLUDE naming an absolute path, from a zone named relatively.
	dir := t.TempDir()
	inc := filepath.Join(dir, "hosts.zone")
	if err := os.WriteFile(inc, []byte("www 300 A 192.0.2.80\nbad 300 A x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(dir, "example.com.zone")
	if err := os.WriteFile(rel, []byte("$TTL 300\n@ SOA ns1 hm 1 2 3 4 5\n NS ns1\nns1 A 192.0.2.1\n$INCLUDE "+inc+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	relPath, err := filepath.Rel(wd, rel)
	if err != nil {
		t.Skip("temporary directory not reachable relatively")
	}
	_, err = zones.Load(zones.Config{Zones: []zones.ZoneConfig{{Origin: "example.com.", File: relPath, AllowInclude: true}}})
	incShown, _ := filepath.Rel(wd, inc)
	if strings.HasPrefix(incShown, "..") {
		incShown = inc
	}
	checkMessages(t, err, []string{incShown + `: dns: bad A A: "x" at line: 2:11`})
}

func TestSetZoneNested(t *testing.T) {
	set, err := zones.Load(zones.Config{Zones: goodZones()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ qname, want string }{
		{"example.com.", "example.com."},
		{"a.b.c.example.com.", "example.com."},
		{"child.example.com.", "child.example.com."},
		{"x.child.example.com.", "child.example.com."},
		{`a\.child.example.com.`, "example.com."}, // one label "a.child"
		{"example.org.", ""},
		{".", ""},
	} {
		got := ""
		if z := set.Zone(tc.qname); z != nil {
			got = z.Origin
		}
		if got != tc.want {
			t.Errorf("Zone(%q) = %q, want %q", tc.qname, got, tc.want)
		}
	}
}

// TestDuplicateRecordsMakeOne: identical records make one (RFC 2181 §5),
// in small RRsets and in large ones (which are indexed differently), and
// whatever the case of the owner name.
func TestDuplicateRecordsMakeOne(t *testing.T) {
	var b strings.Builder
	b.WriteString("$ORIGIN dup.test.\n$TTL 300\n@ SOA ns.dup.test. h.dup.test. 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n")
	b.WriteString("small A 192.0.2.2\nSMALL A 192.0.2.2\nsmall A 192.0.2.3\n")
	for round := range 3 {
		for i := range 100 {
			name := "big"
			if round == 1 {
				name = "BIG"
			}
			fmt.Fprintf(&b, "%s A 10.0.%d.%d\n", name, i/256, i%256)
		}
	}
	file := filepath.Join(t.TempDir(), "dup.zone")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := zones.Load(zones.Config{Zones: []zones.ZoneConfig{{Origin: "dup.test.", File: file}}})
	if err != nil {
		t.Fatal(err)
	}
	z := set.Zone("dup.test.")
	for name, want := range map[string]int{"small.dup.test.": 2, "big.dup.test.": 100} {
		n, _ := z.Lookup(name)
		if got := len(n.RRset(dns.TypeA)); got != want {
			t.Errorf("%s A: %d records, want %d", name, got, want)
		}
	}
	if got, want := len(z.Records()), 3+2+100; got != want {
		t.Errorf("zone holds %d records, want %d", got, want)
	}
}

// TestLoadFS reads the same fixtures through Config.FS as from files: the
// same Set, $INCLUDE resolved inside the FS, and errors naming the files
// by their names in it.
func TestLoadFS(t *testing.T) {
	fsys := os.DirFS("testdata")
	set, err := zones.Load(zones.Config{
		Zones:        []zones.ZoneConfig{{Origin: "example.net.", File: "good/example.net.zone", AllowInclude: true}},
		ServicesFile: "",
		FS:           fsys,
	})
	if err != nil {
		t.Fatalf("Load(FS) = %v", err)
	}
	if _, ok := set.Zone("extra.example.net.").Lookup("extra.example.net."); !ok {
		t.Errorf("nested $INCLUDE not loaded through the FS")
	}
	fromFiles, err := zones.Load(zones.Config{Zones: []zones.ZoneConfig{{Origin: "example.net.", File: "testdata/good/example.net.zone", AllowInclude: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := len(set.Zone("example.net.").Records()), len(fromFiles.Zone("example.net.").Records()); a != b {
		t.Errorf("FS read %d records, files %d", a, b)
	}

	_, err = zones.Load(zones.Config{
		Zones: []zones.ZoneConfig{{Origin: "example.com.", File: "bad/zones/include-syntax.zone", AllowInclude: true}},
		FS:    fsys,
	})
	checkMessages(t, err, []string{`bad/zones/inc/bad.zone: dns: bad MX Pref: "ten" at line: 3:12`})
	_, err = zones.Load(zones.Config{ServicesFile: "no/such.yaml", FS: fsys})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing services file in FS) = %v, want fs.ErrNotExist", err)
	}
}
