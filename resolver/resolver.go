package resolver

import (
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultUDPSize is the EDNS(0) buffer size of DNS flag day 2020: it
// avoids IP fragmentation on nearly every path.
const defaultUDPSize = 1232

// Health answers whether an endpoint (zones.Endpoint.ID) may receive
// traffic. Up is called on the query path: it must be safe for concurrent
// use, must not block and should be a map lookup on an immutable view.
type Health interface {
	Up(endpoint string) bool
}

// Drains reports whether operators drained a site of a service for this
// client. Like [Health] it is called on the query path: safe for
// concurrent use, non-blocking.
type Drains interface {
	Drained(service, site string, client netip.Addr) bool
}

// State is what the resolver answers from. Every part must be immutable
// once published: the resolver reads it from many goroutines without
// locks.
type State struct {
	// Zones is the data served. nil answers SERVFAIL, as before the first
	// publish.
	Zones *zones.Set
	// Health says which endpoints are up; nil counts every endpoint up.
	Health Health
	// Drains says which sites operators drained; nil drains nothing.
	Drains Drains
}

// Config configures a [Resolver]. The zero value is ready to use.
type Config struct {
	// UDPSize is the EDNS(0) buffer size we advertise and the most we send
	// over UDP to a client that advertises more. Zero means 1232; values
	// below 512 are raised to 512.
	UDPSize uint16
	// Logger receives the report of a recovered panic, at most one a
	// minute. nil: panics are only counted.
	Logger *slog.Logger
	// DebugClients may ask for explanations of service answers (see
	// [DebugLabel]); nil: nobody may. The slice must not change
	// afterwards.
	DebugClients []netip.Prefix
	// RRL limits the rate of identical UDP responses per client prefix
	// (see [RRLConfig]); the zero value is off.
	RRL RRLConfig
}

// Resolver is the DNS handler. It answers from the last [State] published.
// ServeDNS is safe for concurrent use; Publish must be called from one
// goroutine only.
type Resolver struct {
	udpSize uint16
	log     *slog.Logger
	debug   []netip.Prefix
	m       *metrics
	rrl     *rrl       // nil: off
	none    *zoneStats // requests that matched no zone

	cur          atomic.Pointer[state]
	lastPanicLog atomic.Int64 // unix nanoseconds

	// Owned by the goroutine that calls Publish.
	gen       uint64
	zoneStats map[string]*zoneStats
	svcStats  map[string]*serviceStats
	counters  *answerCounters
}

var _ dns.Handler = (*Resolver)(nil)

// New returns a Resolver that answers SERVFAIL until the first Publish.
// Its metrics are registered with reg (nil: not registered); New fails
// when they are already registered.
func New(cfg Config, reg prometheus.Registerer) (*Resolver, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	size := cfg.UDPSize
	switch {
	case size == 0:
		size = defaultUDPSize
	case size < dns.MinMsgSize:
		size = dns.MinMsgSize
	}
	limiter, err := newRRL(cfg.RRL, m.shards, reg)
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		rrl:       limiter,
		udpSize:   size,
		log:       cfg.Logger,
		debug:     cfg.DebugClients,
		m:         m,
		none:      newZoneStats("none", m.shards),
		zoneStats: make(map[string]*zoneStats),
		svcStats:  make(map[string]*serviceStats),
		counters:  newAnswerCounters(m.shards),
	}
	r.cur.Store(&state{udpSize: size})
	m.query.none = r.none
	m.query.cur = r.cur.Load
	return r, nil
}

// Publish makes s the state every following query is answered from and
// returns its generation, which increases by one with every call. s must
// not change afterwards. Publish must be called from one goroutine only.
func (r *Resolver) Publish(s State) uint64 {
	prev := r.cur.Load()
	st := nextState(s, r.udpSize, prev)
	r.gen++
	st.gen = r.gen
	st.debug = r.debug
	r.attachStats(st, prev)
	st.fast = buildFast(st, prev, r.none)
	r.cur.Store(st)
	r.m.generation.Set(float64(st.gen))
	return st.gen
}

// attachStats gives st the cached counters of its zones and services,
// creating those of new ones and dropping those gone (their series go
// with them: the collector reads the current state). The services of
// the same zones.Set as prev's have prev's counters.
func (r *Resolver) attachStats(st, prev *state) {
	for origin, zi := range st.zones {
		zs := r.zoneStats[origin]
		if zs == nil {
			zs = newZoneStats(origin, r.m.shards)
			r.zoneStats[origin] = zs
		}
		zi.stats = zs
	}
	for origin := range r.zoneStats {
		if _, ok := st.zones[origin]; !ok {
			delete(r.zoneStats, origin)
		}
	}

	if prev != nil && prev.set == st.set && prev.services != nil {
		st.services, st.counters = prev.services, prev.counters
		return
	}
	st.services = make(map[string]*serviceStats)
	if st.set != nil {
		for _, svc := range st.set.Services() {
			sites := make([]string, 0, len(svc.Sites))
			for _, s := range svc.Sites {
				sites = append(sites, s.Site)
			}
			ss := r.svcStats[svc.Name]
			if ss == nil || !slices.Equal(ss.sites, sites) {
				if ss != nil {
					r.counters.release(ss.base, uint32(len(ss.sites)+1))
				}
				ss = newServiceStats(sites, r.counters)
				r.svcStats[svc.Name] = ss
			}
			st.services[svc.Name] = ss
		}
	}
	for name, ss := range r.svcStats {
		if _, ok := st.services[name]; !ok {
			r.counters.release(ss.base, uint32(len(ss.sites)+1))
			delete(r.svcStats, name)
		}
	}
	st.counters = slices.Clone(r.counters.chunks)
}

// ServeDNS implements [dns.Handler]. It loads the published state once,
// answers from it, writes the reply and counts it. A panic while answering
// is recovered and answered SERVFAIL. It is the general path: TCP, and
// over UDP whatever the fast path does not answer (see [UDPServer]).
func (r *Resolver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	r.serve(w, req, 0, time.Now())
}

// serve is ServeDNS counting in the given metrics shard, for a request
// that arrived at start; a zero start observes no duration (the UDP
// server observes per batch).
func (r *Resolver) serve(w dns.ResponseWriter, req *dns.Msg, shard int, start time.Time) {
	defer func() {
		if v := recover(); v != nil {
			r.recovered(w, req, v)
		}
	}()
	st := r.cur.Load()
	client, tcp := peer(w)
	m, in := respond(st, req, client, tcp)
	if m == nil {
		return
	}
	// A failed write has no one to report to: the client retries.
	if in.transfer && m.Rcode == dns.RcodeSuccess {
		for _, e := range envelopes(m) {
			if w.WriteMsg(e) != nil {
				break
			}
		}
	} else {
		_ = w.WriteMsg(m)
	}

	zs := r.none
	if in.zone != nil && in.zone.stats != nil {
		zs = in.zone.stats
	}
	var qtype uint16
	if len(req.Question) == 1 {
		qtype = req.Question[0].Qtype
	}
	zs.inc(shard, qtype, m.Rcode)
	if in.svc != nil {
		in.svc.inc(shard, in.choice)
	}
	if !start.IsZero() {
		r.m.query.durations[shard].observe(int64(time.Since(start)))
	}
}

// recovered answers SERVFAIL after a panic, counts it and logs it at most
// once a minute, so that a query of death cannot flood the log.
func (r *Resolver) recovered(w dns.ResponseWriter, req *dns.Msg, v any) {
	r.m.panics.Inc()
	if req != nil && !req.Response {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		func() {
			defer func() { _ = recover() }()
			_ = w.WriteMsg(m)
		}()
	}
	if r.log == nil {
		return
	}
	now := time.Now().UnixNano()
	last := r.lastPanicLog.Load()
	if last != 0 && now-last < int64(time.Minute) || !r.lastPanicLog.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"panic", v, "stack", string(debug.Stack())}
	if req != nil && len(req.Question) > 0 {
		attrs = append(attrs, "qname", req.Question[0].Name, "qtype", dns.Type(req.Question[0].Qtype).String())
	}
	r.log.Error("panic answering query", attrs...)
}

// peer returns the client address and whether the query came over TCP
// (TLS included).
func peer(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), false
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), true
	case nil:
		return netip.Addr{}, false
	default:
		ap, _ := netip.ParseAddrPort(a.String())
		n := a.Network()
		return ap.Addr().Unmap(), len(n) >= 3 && n[:3] == "tcp"
	}
}
