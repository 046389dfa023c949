package health

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Checker's collectors. Label values come from
// configuration only (target IDs, probe kinds), so every label set is
// bounded.
type metrics struct {
	// targetUp is 1 for an Up target and 0 for a Down one. A target has no
	// series while Unknown, so "== 0" alerts and averages see only
	// probed conclusions, and a removed target's series is deleted.
	targetUp      *prometheus.GaugeVec
	transitions   *prometheus.CounterVec
	probeDuration *prometheus.HistogramVec
	probeFailures *prometheus.CounterVec
	// localFaults counts probes that failed because of this node, by
	// reason (see localFault); they are not in probeFailures.
	localFaults *prometheus.CounterVec
	// expedited counts probes started before their turn (Expedite).
	expedited prometheus.Counter
}

// newMetrics builds the health collectors and registers them with reg
// unless reg is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "gslb", "health"
	m := &metrics{
		targetUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "target_up",
			Help: "Whether the target is up (1) or down (0) by this node's probes; absent while unknown.",
		}, []string{"target"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "transitions_total",
			Help: "Target state transitions, by the state entered.",
		}, []string{"to"}),
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "probe_duration_seconds",
			Help:    "Duration of health probes, by probe kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"kind"}),
		probeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "probe_failures_total",
			Help: "Failed health probes, by probe kind.",
		}, []string{"kind"}),
		localFaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "local_probe_errors_total",
			Help: "Health probes that failed because of this node (out of file descriptors, buffers, local addresses; denied locally), not the endpoint: they give no verdict.",
		}, []string{"reason"}),
		expedited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "expedited_probes_total",
			Help: "Probes started before their turn because another node's probes saw an endpoint fail that this node sees up.",
		}),
	}
	for _, s := range []State{Up, Down} {
		m.transitions.WithLabelValues(s.String())
	}
	for _, r := range localReasons {
		m.localFaults.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.targetUp, m.transitions, m.probeDuration, m.probeFailures, m.localFaults, m.expedited} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// addKind creates the per-kind series at zero, so rates work from the
// start.
func (m *metrics) addKind(kind string) {
	m.probeDuration.WithLabelValues(kind)
	m.probeFailures.WithLabelValues(kind)
}

func (m *metrics) localFault(reason string) {
	m.localFaults.WithLabelValues(reason).Inc()
}

func (m *metrics) transition(target string, to State) {
	m.transitions.WithLabelValues(to.String()).Inc()
	switch to {
	case Up:
		m.targetUp.WithLabelValues(target).Set(1)
	case Down:
		m.targetUp.WithLabelValues(target).Set(0)
	}
}

func (m *metrics) removeTarget(target string) {
	m.targetUp.DeleteLabelValues(target)
}
