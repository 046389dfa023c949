package resolver

import (
	"net/netip"
	"sync/atomic"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// state is one published snapshot: everything a query needs, immutable
// once built. It is reached through Resolver.cur and loaded once per query.
type state struct {
	gen     uint64
	set     *zones.Set
	health  Health
	drains  Drains
	udpSize uint16 // our EDNS(0) buffer size
	// debug lists the clients whose debug queries are answered (debug.go).
	debug []netip.Prefix

	// zones holds what is precomputed per zone, by origin.
	zones map[string]*zoneInfo
	// svcNeg holds, by service name, the SOA of negative answers at a
	// service whose TTL is below its zone's negative TTL: a copy with the
	// service's TTL.
	svcNeg map[string]*dns.SOA
	// services holds the answer counters by service name; nil when the
	// state was built without metrics (in tests of answer).
	services map[string]*serviceStats
	// counters are the chunks of answer counters the services' slots
	// are in (metrics.go).
	counters [][]atomic.Uint64
	// fast holds the prepacked replies of the fast path; nil answers
	// everything through the general path.
	fast *fastTable
}

// zoneInfo is what is computed once per zone and publish.
type zoneInfo struct {
	// neg is the SOA for negative answers (RFC 2308 §3): a copy of the
	// zone's SOA with TTL min(SOA TTL, MINIMUM). nil when the zone has no
	// SOA.
	neg   *dns.SOA
	stats *zoneStats // nil without metrics
	nx    uint32     // the prepacked NXDOMAIN reply: its offset in fast.arena plus one; 0: none
}

// newState builds the snapshot for s. It copies what it changes and
// leaves s.Zones untouched.
func newState(s State, udpSize uint16) *state { return nextState(s, udpSize, nil) }

// nextState is newState after prev: what depends only on the zones.Set
// (the services' negative SOAs) is prev's when the set is the same, so a
// publish that changes health or drains costs nothing per service here.
func nextState(s State, udpSize uint16, prev *state) *state {
	st := &state{
		set:     s.Zones,
		health:  s.Health,
		drains:  s.Drains,
		udpSize: udpSize,
		zones:   make(map[string]*zoneInfo),
	}
	if s.Zones != nil {
		for _, z := range s.Zones.Zones() {
			st.zones[z.Origin] = &zoneInfo{neg: negativeSOA(z.SOA)}
		}
		if prev != nil && prev.set == s.Zones {
			st.svcNeg = prev.svcNeg // never written after it is built
			return st
		}
		for _, svc := range s.Zones.Services() {
			zi := st.zones[svc.Zone]
			if zi == nil || zi.neg == nil || zi.neg.Hdr.Ttl <= svc.TTL {
				continue
			}
			if st.svcNeg == nil {
				st.svcNeg = make(map[string]*dns.SOA)
			}
			c := *zi.neg
			c.Hdr.Ttl = svc.TTL
			st.svcNeg[svc.Name] = &c
		}
	}
	return st
}

// negativeSOA returns a copy of soa with the TTL of negative answers.
func negativeSOA(soa *dns.SOA) *dns.SOA {
	if soa == nil {
		return nil
	}
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return neg
}

// zone returns the precomputed data of the zone with origin, computing it
// for a zone the snapshot does not know (which a state built by newState
// never lacks).
func (st *state) zone(z *zones.Zone) *zoneInfo {
	if zi := st.zones[z.Origin]; zi != nil {
		return zi
	}
	return &zoneInfo{neg: negativeSOA(z.SOA)}
}
