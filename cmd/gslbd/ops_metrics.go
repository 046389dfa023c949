package main

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/resolver"
)

// The operator's metrics: what a node decided, computed from the state it
// last published when Prometheus scrapes, so nothing runs per publish (but
// the all-down counter) and nothing per query.
//
// Verdicts and the answering site are those of a client that no drain
// limited to some clients covers (the zero address matches no prefix):
// what every client outside a drill gets. Label values are service and
// site names from the services file and node names from the cluster's
// membership.
var (
	servingDesc = prometheus.NewDesc("gslb_service_site_serving",
		"Whether the site may take the service's traffic (1) or not (0): enough endpoints up by the merged verdicts and not drained, for clients no client-limited drain covers.",
		[]string{"service", "site"}, nil)
	answeringDesc = prometheus.NewDesc("gslb_service_answering_site",
		"1 for the site the service answers with (the first serving site in its order), 0 for its other sites; all 0 while the all-down policy decides.",
		[]string{"service", "site"}, nil)
	allDownDesc = prometheus.NewDesc("gslb_service_all_down",
		"1 while no site of the service may take traffic and its all_down policy decides the answer.",
		[]string{"service"}, nil)
	peerAgeDesc = prometheus.NewDesc("gslb_cluster_peer_report_age_seconds",
		"Time since the latest health report from each peer arrived.",
		[]string{"peer"}, nil)
	drainAgeDesc = prometheus.NewDesc("gslb_drain_oldest_age_seconds",
		"Age of the oldest operator drain in force (since it was written); 0 when none is.",
		nil, nil)
)

// noClient is the client of the operator's metrics: one that no drain
// limited to some clients covers.
var noClient = netip.Addr{}

// opsCollector computes the operator's gauges from the last published
// state and the cluster.
type opsCollector struct {
	pub     *publisher
	cluster *cluster.Cluster // nil without gossip
	self    string
	now     func() time.Time
}

var _ prometheus.Collector = (*opsCollector)(nil)

func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{servingDesc, answeringDesc, allDownDesc, peerAgeDesc, drainAgeDesc} {
		ch <- d
	}
}

func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.pub.current()
	now := c.now()
	if cur == nil {
		return
	}
	for _, svc := range cur.Zones.Services() {
		e := resolver.Explain(svc, cur.View, cur.Drains, noClient)
		for i, s := range e.Sites {
			ch <- prometheus.MustNewConstMetric(servingDesc, prometheus.GaugeValue, b2f(s.Servable), svc.Name, s.Site)
			ch <- prometheus.MustNewConstMetric(answeringDesc, prometheus.GaugeValue, b2f(i == e.Site), svc.Name, s.Site)
		}
		ch <- prometheus.MustNewConstMetric(allDownDesc, prometheus.GaugeValue, b2f(e.AllDown()), svc.Name)
	}
	oldest := 0.0
	for _, r := range cur.Drains.Records() {
		oldest = max(oldest, now.Sub(r.At).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(drainAgeDesc, prometheus.GaugeValue, oldest)

	if c.cluster == nil {
		return
	}
	// Peers by membership; ages from the reports as they stand now, not as
	// of the last publish (heartbeats refresh them without a publish).
	last := map[string]time.Time{}
	for _, r := range c.cluster.Reports() {
		last[r.Origin] = r.At
	}
	for _, m := range c.cluster.Members() {
		at, ok := last[m.Name]
		if m.Name == c.self || !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(peerAgeDesc, prometheus.GaugeValue, max(0, now.Sub(at).Seconds()), m.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// allDownCounter counts how often each service fell to its all-down
// policy. It is fed by the publisher after every publish (the only
// writer of its map), since an episode shorter than a scrape interval
// must count too.
type allDownCounter struct {
	total *prometheus.CounterVec
	// in holds every service of the last publish, true for those under
	// their all-down policy; publisher goroutine only.
	in map[string]bool
}

func newAllDownCounter(reg prometheus.Registerer) *allDownCounter {
	c := &allDownCounter{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "service", Name: "all_down_total",
			Help: "Times the service fell to its all_down policy: no site could take traffic.",
		}, []string{"service"}),
		in: map[string]bool{},
	}
	reg.MustRegister(c.total)
	return c
}

// observe counts the services that entered the all-down policy in p. It
// is called by the publisher goroutine only.
func (c *allDownCounter) observe(p *published) {
	now := make(map[string]bool, len(c.in))
	for _, svc := range p.Zones.Services() {
		// Every service has a series from its first publish on, at 0, so
		// that increase() sees the first episode.
		counter := c.total.WithLabelValues(svc.Name)
		if !resolver.Explain(svc, p.View, p.Drains, noClient).AllDown() {
			now[svc.Name] = false
			continue
		}
		now[svc.Name] = true
		if !c.in[svc.Name] {
			counter.Inc()
		}
	}
	for name := range c.in {
		if _, ok := now[name]; !ok {
			c.total.DeleteLabelValues(name)
		}
	}
	c.in = now
}
