package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace = "gslb"
	subsystem = "cluster"
)

// metrics are the cluster's collectors. Counters are updated as things
// happen; member counts are computed from [Cluster.Members] at collect
// time, so they can never drift from what the admin API shows.
type metrics struct {
	received   prometheus.Counter
	beats      prometheus.Counter
	requested  prometheus.Counter
	bad        prometheus.Counter
	joins      *prometheus.CounterVec
	reconnects *prometheus.CounterVec
	rejected   *prometheus.CounterVec

	registered []prometheus.Collector
	reg        prometheus.Registerer
}

// Join results, the values of join_attempts_total's result label.
const (
	joinSuccess = "success"
	joinFailure = "failure"
)

func newMetrics(reg prometheus.Registerer, c *Cluster) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "reports_received_total",
			Help: "Health reports received from other nodes that decoded cleanly, whether or not they were newer than the one held.",
		}),
		beats: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "heartbeats_received_total",
			Help: "Heartbeat digests received from other nodes (in their gossip) that decoded cleanly.",
		}),
		requested: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "reports_requested_total",
			Help: "Reports asked of a peer because a heartbeat named one this node lacked (a newer sequence number, a node it had no report of).",
		}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "bad_messages_total",
			Help: "Gossip messages and push/pull states that could not be decoded and were dropped.",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "join_attempts_total",
			Help: "Attempts to join the cluster through the seeds, by result.",
		}, []string{"result"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "reconnect_attempts_total",
			Help: "Attempts to reach a failed or departed member, or a seed that is not a member, while in the cluster, by result.",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem,
			Name: "rejected_messages_total",
			Help: "Gossip dropped as implausible or unauthenticated, by kind (gossip, report, leave, drains, drain_ack, heartbeat, want) and reason; see the package documentation of cluster.",
		}, []string{"kind", "reason"}),
		reg: reg,
	}
	m.joins.WithLabelValues(joinSuccess)
	m.joins.WithLabelValues(joinFailure)
	m.reconnects.WithLabelValues(joinSuccess)
	m.reconnects.WithLabelValues(joinFailure)
	for _, kr := range rejections {
		m.rejected.WithLabelValues(kr.kind, kr.reason)
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.received, m.beats, m.requested, m.bad, m.joins, m.reconnects, m.rejected, membersCollector{c}} {
		if err := reg.Register(col); err != nil {
			m.unregister()
			return nil, err
		}
		m.registered = append(m.registered, col)
	}
	return m, nil
}

// unregister removes what newMetrics registered, when New fails later.
func (m *metrics) unregister() {
	for _, col := range m.registered {
		m.reg.Unregister(col)
	}
	m.registered = nil
}

var (
	membersDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, subsystem, "members"),
		"Cluster members as this node sees them (itself included), by state: alive, suspect (no heartbeat within the staleness bound), dead or left.",
		[]string{"state"}, nil)
	mismatchDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, subsystem, "config_mismatch"),
		"Alive or suspect peers whose config hash differs from this node's.",
		nil, nil)
)

// membersCollector computes the member gauges from [Cluster.Members].
type membersCollector struct{ c *Cluster }

var _ prometheus.Collector = membersCollector{}

func (mc membersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- membersDesc
	ch <- mismatchDesc
}

func (mc membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{MemberAlive: 0, MemberSuspect: 0, MemberDead: 0, MemberLeft: 0}
	mismatch := 0
	for _, m := range mc.c.Members() {
		counts[m.State]++
		if !m.SameConfig && (m.State == MemberAlive || m.State == MemberSuspect) {
			mismatch++
		}
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(mismatchDesc, prometheus.GaugeValue, float64(mismatch))
}
