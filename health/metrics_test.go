package health

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.addKind("http")
	m.transition("a", Up)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if got := testutil.CollectAndCount(m.probeDuration, "gslb_health_probe_duration_seconds"); got != 1 {
		t.Errorf("probe duration series = %d, want 1", got)
	}
}

func TestMetricsValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.transition("a", Up)
	m.transition("b", Up)
	m.transition("b", Down)
	m.removeTarget("a")
	want := `
# HELP gslb_health_target_up Whether the target is up (1) or down (0) by this node's probes; absent while unknown.
# TYPE gslb_health_target_up gauge
gslb_health_target_up{target="b"} 0
# HELP gslb_health_transitions_total Target state transitions, by the state entered.
# TYPE gslb_health_transitions_total counter
gslb_health_transitions_total{to="down"} 1
gslb_health_transitions_total{to="up"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gslb_health_target_up", "gslb_health_transitions_total"); err != nil {
		t.Error(err)
	}
}

func TestNewCheckerRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewChecker(CheckerConfig{}, nil, nil, reg); err != nil {
		t.Fatal(err)
	}
	_, err := NewChecker(CheckerConfig{}, nil, nil, reg)
	if err == nil || !strings.HasPrefix(err.Error(), "health: register metrics: ") {
		t.Errorf("second NewChecker on one registry: error = %v, want a registration error", err)
	}
}
