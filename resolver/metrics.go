package resolver

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resolver's collectors. Label values come from
// configuration (zone origins, service and site names) and from fixed
// lists (qtype, rcode), never from query names.
type metrics struct {
	requests   *prometheus.CounterVec
	duration   prometheus.Histogram
	answers    *prometheus.CounterVec
	panics     prometheus.Counter
	generation prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "gslb", "resolver"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "DNS requests answered, by zone (origin, or none), query type and response code.",
		}, []string{"zone", "qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help: "Time to answer a DNS request, writing the reply included.",
			Buckets: []float64{
				.000005, .00001, .000025, .00005, .0001, .00025, .0005,
				.001, .0025, .005, .01, .05,
			},
		}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "answers_total",
			Help: "Service answers, by service and by the site that served (all_down when no site was eligible).",
		}, []string{"service", "site"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "panics_total",
			Help: "Panics recovered while answering; each was answered SERVFAIL.",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "publish_generation",
			Help: "Generation of the state the resolver answers from; increases with every publish.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.answers, m.panics, m.generation} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// qtypeLabels are the query types counted under their own name; every
// other type is counted as "other".
var qtypeLabels = [...]string{
	"A", "AAAA", "CNAME", "MX", "NS", "SOA", "TXT", "SRV", "PTR", "CAA",
	"DS", "DNSKEY", "HTTPS", "SVCB", "NAPTR", "ANY", "AXFR", "IXFR", "other",
}

func qtypeIndex(t uint16) int {
	switch t {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	case dns.TypeCNAME:
		return 2
	case dns.TypeMX:
		return 3
	case dns.TypeNS:
		return 4
	case dns.TypeSOA:
		return 5
	case dns.TypeTXT:
		return 6
	case dns.TypeSRV:
		return 7
	case dns.TypePTR:
		return 8
	case dns.TypeCAA:
		return 9
	case dns.TypeDS:
		return 10
	case dns.TypeDNSKEY:
		return 11
	case dns.TypeHTTPS:
		return 12
	case dns.TypeSVCB:
		return 13
	case dns.TypeNAPTR:
		return 14
	case dns.TypeANY:
		return 15
	case dns.TypeAXFR:
		return 16
	case dns.TypeIXFR:
		return 17
	}
	return len(qtypeLabels) - 1
}

// rcodeLabels are the response codes the resolver sends, plus "other".
var rcodeLabels = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other"}

func rcodeIndex(rc int) int {
	switch {
	case rc >= dns.RcodeSuccess && rc <= dns.RcodeRefused:
		return rc
	case rc == dns.RcodeBadVers:
		return 6
	}
	return len(rcodeLabels) - 1
}

// zoneStats caches the request counters of one zone label, so that the
// query path increments a counter without the label lookup (and the lock)
// of CounterVec.WithLabelValues. A slot is filled on first use.
type zoneStats struct {
	vec   *prometheus.CounterVec
	label string
	slots [len(qtypeLabels)][len(rcodeLabels)]atomic.Pointer[prometheus.Counter]
}

func newZoneStats(vec *prometheus.CounterVec, label string) *zoneStats {
	return &zoneStats{vec: vec, label: label}
}

func (z *zoneStats) inc(qtype uint16, rcode int) {
	qi, ri := qtypeIndex(qtype), rcodeIndex(rcode)
	p := &z.slots[qi][ri]
	c := p.Load()
	if c == nil {
		// Two queries racing here store the same child counter.
		cc := z.vec.WithLabelValues(z.label, qtypeLabels[qi], rcodeLabels[ri])
		c = &cc
		p.Store(c)
	}
	(*c).Inc()
}

// serviceStats holds the answer counters of one service: one per site, in
// Service.Sites order, and one for all-down answers. They are created at
// publish time, so every site of every service is exported from zero.
type serviceStats struct {
	sites   []string
	perSite []prometheus.Counter
	allDown prometheus.Counter
}

func (s *serviceStats) inc(c choice) {
	if s == nil {
		return
	}
	if c.site < 0 || c.site >= len(s.perSite) {
		s.allDown.Inc()
		return
	}
	s.perSite[c.site].Inc()
}
