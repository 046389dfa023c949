package main

import "github.com/prometheus/client_golang/prometheus"

// nodeMetrics are the metrics of the node's own lifecycle.
type nodeMetrics struct {
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	reloads    *prometheus.CounterVec
	// DNS over TCP connection limits.
	tcpRefused *prometheus.CounterVec
	tcpOpen    prometheus.Gauge
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "config", Name: "last_reload_successful",
			Help: "Whether the last configuration load succeeded (1) or failed (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "config", Name: "reloads_total",
			Help: "Configuration reloads by result.",
		}, []string{"result"}),
		tcpRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "tcp_connections_refused_total",
			Help: "DNS over TCP connections closed on arrival, by the limit they were over: total or per_client.",
		}, []string{"limit"}),
		tcpOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "tcp_connections",
			Help: "DNS over TCP connections open.",
		}),
	}
	m.tcpRefused.WithLabelValues("total")
	m.tcpRefused.WithLabelValues("per_client")
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gslb", Name: "build_info",
		Help: "Always 1; the labels say which gslbd this is.",
	}, []string{"version", "revision", "goversion"})
	bi := readBuildInfo()
	rev := bi.Revision
	if bi.Modified {
		rev += "-modified"
	}
	build.WithLabelValues(bi.Version, rev, bi.GoVersion).Set(1)
	reg.MustRegister(m.reloadOK, m.reloadTime, m.reloads, m.tcpRefused, m.tcpOpen, build)
	return m
}
