package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gslbd/gslbd/internal/dnstest"
)

// TestAlertRules has promtool check the alert rules and run their unit
// tests (deploy/prometheus/gslbd.rules.test.yml: one per rule).
func TestAlertRules(t *testing.T) {
	promtool := dnstest.RequireTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "gslbd.rules.yml"},
		{"test", "rules", "gslbd.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy/prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesAreTested: every rule has a test that expects it to fire.
func TestAlertRulesAreTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert string }
		}
	}
	readYAML(t, "../../deploy/prometheus/gslbd.rules.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	readYAML(t, "../../deploy/prometheus/gslbd.rules.test.yml", &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s has no unit test in which it fires", r.Alert)
			}
		}
	}
	if n < 7 {
		t.Errorf("%d alert rules, want at least 7", n)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// queryMetricRE finds the metric names in a PromQL expression: ours all
// start with gslb_; up is Prometheus's own.
var queryMetricRE = regexp.MustCompile(`\b(gslb_[a-z0-9_]+|up)\b`)

// TestQueriesUseExportedMetrics checks that every metric named by a query
// of the Grafana dashboard or of the alert rules is one gslbd exports:
// a family on a running node's /metrics (with gossip and a service) or in
// the README's metrics table (for series that need a peer or a drain).
func TestQueriesUseExportedMetrics(t *testing.T) {
	// The queries.
	queries := map[string][]string{} // metric -> where used
	var dash any
	data, err := os.ReadFile("../../deploy/grafana/gslbd.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("gslbd.json: %v", err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					for _, m := range queryMetricRE.FindAllString(s, -1) {
						queries[m] = append(queries[m], "gslbd.json "+path)
					}
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", dash)
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	readYAML(t, "../../deploy/prometheus/gslbd.rules.yml", &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range queryMetricRE.FindAllString(r.Expr, -1) {
				queries[m] = append(queries[m], "rule "+r.Alert)
			}
		}
	}
	if len(queries) < 10 {
		t.Fatalf("only %d metrics found in the queries: %v", len(queries), queries)
	}

	// What the server exports.
	families := map[string]string{"up": "gauge"} // name -> type
	n := metricsNode(t)
	answerA(t, n.bound.DNS[0], "talk.example.com.")
	for _, line := range strings.Split(adminGet(t, n.bound.Admin, "/metrics"), "\n") {
		if f := strings.Fields(strings.TrimPrefix(line, "# TYPE ")); strings.HasPrefix(line, "# TYPE ") && len(f) == 2 {
			families[f[0]] = f[1]
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `(gslb_[a-z0-9_]+)[{`].*\\| (counter|gauge|histogram) \\|").FindAllStringSubmatch(string(readme), -1) {
		if _, ok := families[m[1]]; !ok {
			families[m[1]] = m[2]
		}
	}

	for _, m := range slices.Sorted(maps.Keys(queries)) {
		if _, ok := families[m]; ok {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if typ := families[base]; base != m && typ == "histogram" {
			continue
		}
		t.Errorf("metric %s (used by %s) is not exported by gslbd", m, strings.Join(slices.Compact(queries[m]), ", "))
	}
}
