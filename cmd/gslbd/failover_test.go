package main

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/testwait"
)

// freePort returns a TCP port that is free on every given loopback address.
func freePort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		ln.Close()
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

const failoverZone = `$ORIGIN example.com.
$TTL 60
@    IN SOA ns1 hostmaster 1 7200 900 1209600 300
     IN NS  ns1
ns1  IN A   192.0.2.1
`

// TestFailoverTwoSites runs two nodes, one per site, gossiping on loopback;
// dc1's endpoints fail their health check and both nodes move talk to dc2,
// then come back.
func TestFailoverTwoSites(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t, "127.0.1.10", "127.0.2.10")
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`sites: [dc1, dc2]
services:
  talk.example.com:
    order: [dc1, dc2]
    ttl: 20
    check: {type: http, port: %d, path: /healthz}
    sites:
      dc1: [127.0.1.10]
      dc2: [127.0.2.10]
`, port))
	nodeConfig := func(name, site, seed, endpoint string) string {
		path := filepath.Join(dir, name+".yaml")
		seeds := "[]"
		if seed != "" {
			seeds = fmt.Sprintf("[%q]", seed)
		}
		writeFile(t, path, fmt.Sprintf(`node: {name: %s, site: %s}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0"}
cluster: {bind: "127.0.0.1:0", seeds: %s}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
state_dir: %s
demo: {endpoints: ["%s:%d"]}
`, name, site, seeds, filepath.Join(dir, name), endpoint, port))
		return path
	}
	a := startNode(t, nodeConfig("a", "dc1", "", "127.0.1.10"))
	b := startNode(t, nodeConfig("b", "dc2", a.bound.Gossip, "127.0.2.10"))
	nodes := map[string]*testNode{"a": a, "b": b}

	answersOn := func(want string) func() bool {
		return func() bool {
			for _, n := range nodes {
				if answerA(t, n.bound.DNS[0], "talk.example.com.") != want {
					return false
				}
			}
			return true
		}
	}
	testwait.Until(t, 10*time.Second, "both nodes answer dc1", answersOn("127.0.1.10"))
	testwait.Until(t, 10*time.Second, "the nodes see each other", func() bool {
		st := metric(t, a.bound.Admin, `gslb_cluster_members{state="alive"}`)
		return st == "2"
	})

	// The operator's metrics say the same on both nodes: dc1 serves and
	// answers, and the peer's report is fresh.
	gauges := func(answering string) func() bool {
		return func() bool {
			for _, n := range nodes {
				for _, site := range []string{"dc1", "dc2"} {
					want := "0"
					if site == answering {
						want = "1"
					}
					if metric(t, n.bound.Admin, `gslb_service_answering_site{service="talk.example.com.",site="`+site+`"}`) != want ||
						metric(t, n.bound.Admin, `gslb_service_site_serving{service="talk.example.com.",site="`+site+`"}`) != map[bool]string{true: "1", false: "0"}[site == "dc2" || answering == "dc1"] {
						return false
					}
				}
			}
			return true
		}
	}
	testwait.Until(t, 10*time.Second, "both nodes' gauges say dc1 answers", gauges("dc1"))
	if age, err := strconv.ParseFloat(metric(t, a.bound.Admin, `gslb_cluster_peer_report_age_seconds{peer="b"}`), 64); err != nil || age > 5 {
		t.Errorf("a: gslb_cluster_peer_report_age_seconds{peer=\"b\"} = %v (%v), want a fresh report", age, err)
	}

	post := func(path string) {
		resp, err := http.Post(fmt.Sprintf("http://127.0.1.10:%d%s", port, path), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	start := time.Now()
	post("/fail")
	testwait.Until(t, 10*time.Second, "both nodes answer dc2 after dc1 fails", answersOn("127.0.2.10"))
	t.Logf("dc1 failure: every node answered dc2 after %s", time.Since(start).Round(time.Millisecond))
	testwait.Until(t, 10*time.Second, "both nodes' gauges say dc2 answers", gauges("dc2"))

	// The node in dc2 decided from dc1's own report, which says down.
	if s := adminGet(t, b.bound.Admin, "/api/v1/status"); !strings.Contains(s, `"reason": "own site 0/1 up"`) {
		t.Errorf("status on b does not explain the verdict from dc1's report:\n%s", s)
	}

	start = time.Now()
	post("/recover")
	testwait.Until(t, 10*time.Second, "both nodes answer dc1 again", answersOn("127.0.1.10"))
	t.Logf("dc1 recovery: every node answered dc1 after %s", time.Since(start).Round(time.Millisecond))
}
