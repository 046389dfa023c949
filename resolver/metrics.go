package resolver

import (
	"math"
	"runtime"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resolver's collectors. Label values come from
// configuration (zone origins, service and site names) and from fixed
// lists (qtype, rcode), never from query names.
//
// The per-query counters (requests, answers, duration) are not prometheus
// vectors: every query would pay a label lookup or at least an atomic add
// on a cache line shared by every core. They are plain atomic counters in
// shards, one shard per reader goroutine (shard 0 for ServeDNS callers),
// each on its own cache lines, and [queryCollector] sums the shards when
// the registry is scraped. A shard's counters are written by one goroutine
// at a time in the common case, so the adds never contend.
type metrics struct {
	shards     int
	query      *queryCollector
	panics     prometheus.Counter
	generation prometheus.Gauge
}

// durationBuckets are the upper bounds, in seconds, of the request
// duration histogram.
var durationBuckets = [...]float64{
	.000005, .00001, .000025, .00005, .0001, .00025, .0005,
	.001, .0025, .005, .01, .05,
}

// durationBounds are durationBuckets in nanoseconds.
var durationBounds = func() (b [len(durationBuckets)]int64) {
	for i, s := range durationBuckets {
		b[i] = int64(math.Round(s * 1e9))
	}
	return b
}()

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "gslb", "resolver"
	shards := runtime.GOMAXPROCS(0) + 1
	m := &metrics{
		shards: shards,
		query: &queryCollector{
			requests: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "requests_total"),
				"DNS requests answered, by zone (origin, or none), query type and response code.",
				[]string{"zone", "qtype", "rcode"}, nil),
			answers: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "answers_total"),
				"Service answers, by service and by the site that served (all_down when no site was eligible).",
				[]string{"service", "site"}, nil),
			duration: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "request_duration_seconds"),
				"Time from reading a DNS request to writing its reply. Over UDP the requests read together in one batch count with the batch's time.", nil, nil),
			reads: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "udp_reads_total"),
				"UDP reads that returned requests; requests over UDP divided by this is how many one read carries.", nil, nil),
			pauses: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "udp_read_pauses_total"),
				"UDP reads after which the reader paused to let more requests gather (dns.udp_coalesce).", nil, nil),
			durations: make([]durationShard, shards),
		},
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
		for _, c := range []prometheus.Collector{m.query, m.panics, m.generation} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// queryCollector exports the sharded per-query counters. It reads the
// counters of the state published last (through cur), so the series of
// zones and services that are gone disappear with them.
type queryCollector struct {
	requests, answers, duration *prometheus.Desc
	reads, pauses               *prometheus.Desc

	cur       func() *state // set by New
	none      *zoneStats    // requests that matched no zone
	durations []durationShard
}

// durationShard is one shard of the duration histogram: counts per
// bucket (the last is +Inf) and the sum in nanoseconds, padded so that
// two shards never share a cache line.
type durationShard struct {
	_      [64]byte
	counts [len(durationBuckets) + 1]atomic.Uint64
	sumNs  atomic.Uint64
	// reads counts the UDP reads that returned queries, and pauses those
	// after which the reader paused to let more gather (see
	// UDPServer.SetCoalesce).
	reads, pauses atomic.Uint64
}

// observe records one request that took ns nanoseconds.
func (d *durationShard) observe(ns int64) { d.observeN(ns, 1) }

// observeN records n requests that took ns nanoseconds each: the queries
// of one batch, whose replies all leave together.
func (d *durationShard) observeN(ns int64, n int) {
	i := 0
	for i < len(durationBounds) && ns > durationBounds[i] {
		i++
	}
	d.counts[i].Add(uint64(n))
	d.sumNs.Add(uint64(max(ns, 0)) * uint64(n))
}

func (c *queryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.answers
	ch <- c.duration
	ch <- c.reads
	ch <- c.pauses
}

func (c *queryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cur()
	c.none.collect(ch, c.requests)
	for _, zi := range st.zones {
		if zi.stats != nil {
			zi.stats.collect(ch, c.requests)
		}
	}
	for name, ss := range st.services {
		counts := ss.sum()
		for i, site := range ss.sites {
			ch <- prometheus.MustNewConstMetric(c.answers, prometheus.CounterValue, float64(counts[i]), name, site)
		}
		ch <- prometheus.MustNewConstMetric(c.answers, prometheus.CounterValue, float64(counts[len(ss.sites)]), name, "all_down")
	}

	var buckets [len(durationBuckets) + 1]uint64
	var sum, reads, pauses uint64
	for i := range c.durations {
		d := &c.durations[i]
		for j := range buckets {
			buckets[j] += d.counts[j].Load()
		}
		sum += d.sumNs.Load()
		reads += d.reads.Load()
		pauses += d.pauses.Load()
	}
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(reads))
	ch <- prometheus.MustNewConstMetric(c.pauses, prometheus.CounterValue, float64(pauses))
	cum := make(map[float64]uint64, len(durationBuckets))
	var n uint64
	for j, ub := range durationBuckets {
		n += buckets[j]
		cum[ub] = n
	}
	n += buckets[len(durationBuckets)]
	ch <- prometheus.MustNewConstHistogram(c.duration, n, float64(sum)/1e9, cum)
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

// zoneCells are one shard of a zone's request counters, padded to keep
// shards off each other's cache lines.
type zoneCells struct {
	_ [64]byte
	c [len(qtypeLabels) * len(rcodeLabels)]atomic.Uint64
}

// zoneStats holds the request counters of one zone label (origin, or
// "none"), one set per shard. It lives across publishes while the zone
// does, so its counters only grow.
type zoneStats struct {
	label  string
	shards []zoneCells
}

func newZoneStats(label string, shards int) *zoneStats {
	return &zoneStats{label: label, shards: make([]zoneCells, shards)}
}

// cell returns the index of the counter of qtype and rcode in a shard.
func cell(qtype uint16, rcode int) uint16 {
	return uint16(qtypeIndex(qtype)*len(rcodeLabels) + rcodeIndex(rcode))
}

func (z *zoneStats) inc(shard int, qtype uint16, rcode int) {
	z.add(shard, cell(qtype, rcode))
}

func (z *zoneStats) add(shard int, cell uint16) {
	z.shards[shard].c[cell].Add(1)
}

// collect sends the counters that are not zero: a series appears with the
// first request it counts, as a CounterVec child would.
func (z *zoneStats) collect(ch chan<- prometheus.Metric, desc *prometheus.Desc) {
	for i := range len(qtypeLabels) * len(rcodeLabels) {
		var n uint64
		for s := range z.shards {
			n += z.shards[s].c[i].Load()
		}
		if n == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n),
			z.label, qtypeLabels[i/len(rcodeLabels)], rcodeLabels[i%len(rcodeLabels)])
	}
}

// counterChunkSlots is how many answer counters a chunk holds per shard.
const counterChunkSlots = 1 << 12

// noSlot marks a reply that counts no service answer.
const noSlot = ^uint32(0)

// answerCounters holds the service answer counters of every service in
// chunks that are never moved or freed, shard-major: a chunk is
// counterChunkSlots counters of shard 0, then as many of shard 1, and so
// on, so that readers counting in different shards never write the same
// cache line, and the counters of one shard for many services are dense
// (a shard of 100,000 services of two sites is 2.4 MB, where a cache line
// per service and shard would be 6.4 MB).
//
// A service gets a run of consecutive slots (one per site, one for
// all-down) in one chunk, a global slot number, which it keeps while it
// exists with the same sites. A run freed when a service goes is zeroed
// when it is handed out again; a reader still answering from an older
// state may add a stray count to it in between, which a counter tolerates.
//
// Owned by the goroutine that calls Publish; readers reach the chunks
// through the slice copied into each published state.
type answerCounters struct {
	shards int
	chunks [][]atomic.Uint64
	next   uint32              // the first slot never handed out
	free   map[uint32][]uint32 // freed runs by length
}

func newAnswerCounters(shards int) *answerCounters {
	return &answerCounters{shards: shards, free: make(map[uint32][]uint32)}
}

// alloc returns the first slot of a run of n zeroed slots in one chunk.
func (c *answerCounters) alloc(n uint32) uint32 {
	if runs := c.free[n]; len(runs) > 0 {
		base := runs[len(runs)-1]
		c.free[n] = runs[:len(runs)-1]
		ch := c.chunks[base/counterChunkSlots]
		for s := range c.shards {
			for i := range n {
				ch[s*counterChunkSlots+int(base%counterChunkSlots+i)].Store(0)
			}
		}
		return base
	}
	if n > counterChunkSlots {
		panic("resolver: a service with more sites than a counter chunk holds")
	}
	if c.next%counterChunkSlots+n > counterChunkSlots {
		c.next += counterChunkSlots - c.next%counterChunkSlots
	}
	for int(c.next/counterChunkSlots) >= len(c.chunks) {
		c.chunks = append(c.chunks, make([]atomic.Uint64, counterChunkSlots*c.shards))
	}
	base := c.next
	c.next += n
	return base
}

// release hands the run at base of n slots back.
func (c *answerCounters) release(base, n uint32) {
	c.free[n] = append(c.free[n], base)
}

// loadAnswer returns the count of global slot g in shard.
func loadAnswer(chunks [][]atomic.Uint64, shard int, g uint32) uint64 {
	return chunks[g/counterChunkSlots][shard*counterChunkSlots+int(g%counterChunkSlots)].Load()
}

// countAnswer adds one to global slot g in shard.
func countAnswer(chunks [][]atomic.Uint64, shard int, g uint32) {
	chunks[g/counterChunkSlots][shard*counterChunkSlots+int(g%counterChunkSlots)].Add(1)
}

// serviceStats are the answer counters of one service: one per site in
// Service.Sites order and one for all-down answers, at global slots base
// to base+len(sites) of an [answerCounters]. They are created at publish
// time, so every site of every service is exported from zero.
type serviceStats struct {
	sites  []string
	base   uint32
	chunk  []atomic.Uint64 // the chunk holding the run
	shards int
}

func newServiceStats(sites []string, c *answerCounters) *serviceStats {
	base := c.alloc(uint32(len(sites) + 1))
	return &serviceStats{sites: sites, base: base, chunk: c.chunks[base/counterChunkSlots], shards: c.shards}
}

// slot returns the counter index of c: its site, or all_down.
func (s *serviceStats) slot(c choice) int {
	if c.site < 0 || c.site >= len(s.sites) {
		return len(s.sites)
	}
	return c.site
}

// global returns the global slot number of the counter of slot.
func (s *serviceStats) global(slot int) uint32 { return s.base + uint32(slot) }

func (s *serviceStats) add(shard, slot int) {
	s.chunk[shard*counterChunkSlots+int(s.base%counterChunkSlots)+slot].Add(1)
}

func (s *serviceStats) inc(shard int, c choice) {
	if s == nil {
		return
	}
	s.add(shard, s.slot(c))
}

// sum returns the counters summed over the shards, all_down last.
func (s *serviceStats) sum() []uint64 {
	out := make([]uint64, len(s.sites)+1)
	off := int(s.base % counterChunkSlots)
	for sh := range s.shards {
		for i := range out {
			out[i] += s.chunk[sh*counterChunkSlots+off+i].Load()
		}
	}
	return out
}
