package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/internal/testwait"
)

const reloadZone = `$ORIGIN example.com.
$TTL 60
@    IN SOA ns1 hostmaster 1 7200 900 1209600 300
     IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   %s
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// query asks addr for name/qtype over UDP and returns the reply.
func query(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s @%s: %v", name, dns.TypeToString[qtype], addr, err)
	}
	return r
}

func answerA(t *testing.T, addr, name string) string {
	t.Helper()
	r := query(t, addr, name, dns.TypeA)
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return strings.Join(out, ",")
}

func metric(t *testing.T, admin, name string) string {
	t.Helper()
	for _, line := range strings.Split(adminGet(t, admin, "/metrics"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("metric %s not exported", name)
	return ""
}

// reloadFixture writes a node configuration serving reloadZone with www
// at 192.0.2.10, with the given admin setting; it returns the zone file and
// the configuration file.
func reloadFixture(t *testing.T, admin string) (zone, cfg string) {
	t.Helper()
	dir := t.TempDir()
	zone = filepath.Join(dir, "example.com.zone")
	writeFile(t, zone, strings.Replace(reloadZone, "%s", "192.0.2.10", 1))
	cfg = filepath.Join(dir, "gslbd.yaml")
	writeFile(t, cfg, `node: {name: t, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: `+admin+`
zones: [{origin: example.com., file: example.com.zone}]
`)
	return zone, cfg
}

func TestReloadKeepsLastGoodData(t *testing.T) {
	zone, cfg := reloadFixture(t, `{listen: "127.0.0.1:0"}`)
	n := startNode(t, cfg)
	dnsAddr := n.bound.DNS[0]
	if got := answerA(t, dnsAddr, "www.example.com."); got != "192.0.2.10" {
		t.Fatalf("www A = %q, want 192.0.2.10", got)
	}

	// A reload that fails validation keeps serving the old data.
	writeFile(t, zone, strings.Replace(reloadZone, "%s", "192.0.2.20", 1)+"www IN CNAME elsewhere.example.net.\n")
	n.reload <- struct{}{}
	testwait.Until(t, 10*time.Second, "reload failure logged", func() bool {
		return strings.Contains(n.logs.String(), "reload failed")
	})
	if !strings.Contains(n.logs.String(), "example.com.zone:7: CNAME record for www.example.com. beside other data") {
		t.Errorf("reload failure log does not say file:line and problem:\n%s", n.logs)
	}
	if got := answerA(t, dnsAddr, "www.example.com."); got != "192.0.2.10" {
		t.Errorf("after a failed reload www A = %q, want the old 192.0.2.10", got)
	}
	if got := metric(t, n.bound.Admin, "gslb_config_last_reload_successful"); got != "0" {
		t.Errorf("gslb_config_last_reload_successful = %s after a failed reload, want 0", got)
	}

	// A good reload swaps the data atomically.
	writeFile(t, zone, strings.Replace(reloadZone, "%s", "192.0.2.30", 1))
	n.reload <- struct{}{}
	testwait.Until(t, 10*time.Second, "www A becomes 192.0.2.30", func() bool {
		return answerA(t, dnsAddr, "www.example.com.") == "192.0.2.30"
	})
	if got := metric(t, n.bound.Admin, "gslb_config_last_reload_successful"); got != "1" {
		t.Errorf("gslb_config_last_reload_successful = %s after a good reload, want 1", got)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	var stderr syncBuffer
	err := run(t.Context(), []string{"serve", "-config", "testdata/bad/gslbd.yaml"}, func(string) string { return "" }, io.Discard, &stderr, hooks{})
	ee, ok := err.(exitError)
	if !ok || ee.code != 2 || !strings.Contains(ee.msg, "testdata/bad/bad.zone:5: CNAME record") {
		t.Fatalf("gslbd serve with a bad zone = %v, want exit 2 naming bad.zone:5", err)
	}
}

func TestGracefulStopClosesListeners(t *testing.T) {
	n := startNode(t, "../../testdata/dig/gslbd.yaml")
	addr := n.bound.DNS[0]
	if got := answerA(t, addr, "www.example.com."); got != "192.0.2.10" {
		t.Fatalf("www A = %q", got)
	}
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(n.logs.String(), "msg=stopped") {
		t.Errorf("no clean stop in logs:\n%s", n.logs)
	}
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	if _, _, err := c.Exchange(m, addr); err == nil {
		t.Errorf("query after stop answered; want the listener closed")
	}
}

// TestReloadWithBadRegionsKeepsServing: a services file whose regions
// overlap is refused on reload, with its file:line, and the nearest
// answers stay what they were.
func TestReloadWithBadRegionsKeepsServing(t *testing.T) {
	zone, cfg := reloadFixture(t, `{disabled: true}`)
	dir := filepath.Dir(zone)
	services := filepath.Join(dir, "services.yaml")
	// Every endpoint is down (nothing listens on port 9), and all_down
	// first serves the first site of the client's order: 127.0.0.1 is in
	// region lo, whose order starts with dc2.
	good := `sites: [dc1, dc2]
defaults: {check: {type: tcp, port: 9}}
regions:
  lo: {networks: [127.0.0.0/8], order: [dc2, dc1]}
services:
  near.example.com:
    policy: nearest
    all_down: first
    sites: {dc1: [127.0.9.1], dc2: [127.0.9.2]}
`
	writeFile(t, services, good)
	b, _ := os.ReadFile(cfg)
	writeFile(t, cfg, string(b)+"services: services.yaml\n")
	n := startNode(t, cfg)
	dnsAddr := n.bound.DNS[0]
	if got := answerA(t, dnsAddr, "near.example.com."); got != "127.0.9.2" {
		t.Fatalf("near A = %q, want dc2's 127.0.9.2 for a client in region lo", got)
	}
	writeFile(t, services, strings.Replace(good, "[127.0.0.0/8]", "[127.0.0.0/8, 127.0.0.0/16]", 1))
	n.reload <- struct{}{}
	testwait.Until(t, 10*time.Second, "reload failure logged", func() bool {
		return strings.Contains(n.logs.String(), "reload failed")
	})
	if !strings.Contains(n.logs.String(), "services.yaml:4: regions.lo: network 127.0.0.0/16 overlaps 127.0.0.0/8") {
		t.Errorf("reload failure log does not name the overlap with file:line:\n%s", n.logs)
	}
	if got := answerA(t, dnsAddr, "near.example.com."); got != "127.0.9.2" {
		t.Errorf("after a failed reload near A = %q, want the old 127.0.9.2", got)
	}
}
