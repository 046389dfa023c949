package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsLint lints every metric a running node (with gossip and
// services) exports, the way CoreDNS lints its own, and checks that the
// README lists each gslb_ family.
func TestMetricsLint(t *testing.T) {
	n := metricsNode(t)
	// Exercise the query path so its labelled series exist.
	answerA(t, n.bound.DNS[0], "talk.example.com.")
	answerA(t, n.bound.DNS[0], "nope.example.com.")

	body := adminGet(t, n.bound.Admin, "/metrics")
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	families := 0
	for _, line := range strings.Split(body, "\n") {
		name, ok := strings.CutPrefix(line, "# TYPE ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		if !strings.HasPrefix(name, "gslb_") {
			continue
		}
		families++
		if !strings.Contains(string(readme), name) {
			t.Errorf("metric %s is not listed in README.md", name)
		}
	}
	if families < 10 {
		t.Errorf("only %d gslb_ metric families exported:\n%s", families, body)
	}
}

// metricsNode starts a node with gossip and one service on a demo
// endpoint of its own, so that every family of metrics has series.
func metricsNode(t *testing.T) *testNode {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t, "127.0.1.10")
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`sites: [dc1]
services:
  talk.example.com:
    check: {type: http, port: %d, path: /healthz}
    sites: {dc1: [127.0.1.10]}
`, port))
	cfg := filepath.Join(dir, "gslbd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`node: {name: m, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0"}
cluster: {bind: "127.0.0.1:0"}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
state_dir: %s
demo: {endpoints: ["127.0.1.10:%d"]}
`, filepath.Join(dir, "state"), port))
	n := startNode(t, cfg)
	return n
}
