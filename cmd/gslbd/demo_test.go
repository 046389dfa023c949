package main

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDemoNameServersAnswer makes, for the bundled demo (testdata/demo),
// the name server checks a delegation checker such as Zonemaster makes. It
// reads the demo's own configuration and serves its zones and services on
// its listen IPs, each with a free port instead of 5300 (which a running
// demo may hold; tests use no fixed ports). It asks that node, with dig, for
// the NS RRset at every zone apex and for the A and AAAA records of each NS
// name, and then requires:
//   - at least two NS names (RFC 1034 section 4.1, RFC 2182 section 5);
//   - every NS name has an address, and no two names share one;
//   - the NS names are alike: each has addresses of the same families
//     (IPv4 only, IPv6 only, or both), so no family is served by one
//     name server alone;
//   - every address is one the node listens on, and there, on the port it
//     was bound to, answers a non-recursive SOA query for the zone with AA
//     set, over UDP and over TCP.
//
// So each name server the demo zone names is this node, reachable on every
// transport. The port in the test is not 5300; that the demo binds 5300 on
// each listen address is what `go run ./cmd/gslbd` shows.
func TestDemoNameServersAnswer(t *testing.T) {
	dig := requireDig(t)
	demo, err := loadConfig("../../testdata/demo/gslbd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, freePortConfig(t, demo))

	// The node's listen addresses, by IP, with the port each was bound to.
	listen := map[netip.Addr]string{}
	for _, a := range n.bound.DNS {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			t.Fatalf("bound DNS address %q: %v", a, err)
		}
		listen[ap.Addr().Unmap()] = fmt.Sprint(ap.Port())
	}
	// Names and addresses are read from the first listen address.
	first := netip.MustParseAddrPort(n.bound.DNS[0])
	server, port := first.Addr().String(), fmt.Sprint(first.Port())

	for _, z := range demo.Zones {
		origin := strings.ToLower(z.Origin)
		t.Run(origin, func(t *testing.T) {
			names := digRdata(t, dig, server, port, origin, "NS")
			if len(names) < 2 {
				t.Errorf("%s NS = %v, want at least two name servers", origin, names)
			}
			owner := map[netip.Addr]string{} // address -> the NS name that has it
			families := map[string]string{}  // NS name -> "4", "6" or "46"
			for _, ns := range names {
				var addrs []string
				for _, qtype := range []string{"A", "AAAA"} {
					got := digRdata(t, dig, server, port, ns, qtype)
					if len(got) > 0 {
						families[ns] += map[string]string{"A": "4", "AAAA": "6"}[qtype]
					}
					addrs = append(addrs, got...)
				}
				if len(addrs) == 0 {
					t.Errorf("name server %s: no A or AAAA from this node", ns)
				}
				for _, s := range addrs {
					addr, err := netip.ParseAddr(s)
					if err != nil {
						t.Fatalf("name server %s: address %q: %v", ns, s, err)
					}
					if other, ok := owner[addr]; ok {
						t.Errorf("name servers %s and %s share the address %s", other, ns, addr)
					}
					owner[addr] = ns
					port, ok := listen[addr]
					if !ok {
						t.Errorf("name server %s has the address %s, where the demo does not listen (dns.listen %v)", ns, addr, demo.DNS.Listen)
						continue
					}
					for _, transport := range []string{"udp", "tcp"} {
						checkAuthoritativeSOA(t, dig, addr.String(), port, transport, origin, ns)
					}
				}
			}
			for _, ns := range names[1:] {
				if families[ns] != families[names[0]] {
					t.Errorf("name servers differ in address families: %v (IPv4 \"4\", IPv6 \"6\"); a family served by fewer than two name servers fails delegation checks", families)
					break
				}
			}
		})
	}
}

// freePortConfig writes a configuration serving what cfg serves, on cfg's
// listen IPs with port 0, and returns its path. The admin listener and the
// demo's stand-in endpoints, which have fixed ports, are left out.
func freePortConfig(t *testing.T, cfg *Config) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "node: {name: %q, site: %q}\n", cfg.Node.Name, cfg.Node.Site)
	b.WriteString("dns:\n  listen:\n")
	for _, a := range cfg.DNS.Listen {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("dns.listen %q: %v", a, err)
		}
		fmt.Fprintf(&b, "    - %q\n", net.JoinHostPort(host, "0"))
	}
	b.WriteString("admin: {disabled: true}\nzones:\n")
	for _, z := range cfg.Zones {
		fmt.Fprintf(&b, "  - origin: %q\n    file: %q\n", z.Origin, abs(t, cfg.resolve(z.File)))
	}
	if cfg.Services != "" {
		fmt.Fprintf(&b, "services: %q\n", abs(t, cfg.resolve(cfg.Services)))
	}
	path := filepath.Join(dir, "gslbd.yaml")
	writeFile(t, path, b.String())
	return path
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// digRdata asks server for qname and qtype, without recursion, and returns
// the rdata of the answer's records of that type. The answer must be
// authoritative NOERROR.
func digRdata(t *testing.T, dig, server, port, qname, qtype string) []string {
	t.Helper()
	r := digAt(t, dig, server, port, qname, qtype, "+norec")
	if r.status != "NOERROR" || !slices.Contains(r.flags, "aa") {
		t.Fatalf("dig @%s -p %s %s %s: %s, flags %v, want authoritative NOERROR", server, port, qname, qtype, r.status, r.flags)
	}
	var out []string
	for _, rr := range r.sections["answer"] {
		f := strings.Fields(rr) // owner ttl class type rdata
		if len(f) == 5 && f[3] == qtype {
			out = append(out, strings.ToLower(f[4]))
		}
	}
	return out
}

// checkAuthoritativeSOA requires server:port to answer origin's SOA with AA
// set over transport ("udp" or "tcp").
func checkAuthoritativeSOA(t *testing.T, dig, server, port, transport, origin, ns string) {
	t.Helper()
	args := []string{origin, "SOA", "+norec"}
	if transport == "tcp" {
		args = append(args, "+tcp")
	}
	r := digAt(t, dig, server, port, args...)
	var soa []string
	for _, rr := range r.sections["answer"] {
		if f := strings.Fields(rr); len(f) > 3 && f[3] == "SOA" && strings.EqualFold(f[0], origin) {
			soa = append(soa, rr)
		}
	}
	if r.status != "NOERROR" || !slices.Contains(r.flags, "aa") || len(soa) != 1 {
		t.Errorf("name server %s at %s, %s: SOA %s: %s, flags %v, answer %v; want NOERROR, aa and the SOA",
			ns, net.JoinHostPort(server, port), transport, origin, r.status, r.flags, r.sections["answer"])
	}
}

// digAt runs dig against server:port and parses its output.
func digAt(t *testing.T, dig, server, port string, args ...string) *digResult {
	t.Helper()
	all := append([]string{"@" + server, "-p", port, "+time=5", "+tries=1"}, args...)
	out, err := exec.Command(dig, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	r, err := parseDig(string(out))
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	return r
}
