package resolver

import (
	"net"
	"net/netip"
	"slices"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// maxChain bounds the CNAME hops followed inside our zones, as CoreDNS's
// file plugin does; with the loop check it keeps chains finite.
const maxChain = 8

// outcome is what the lookup found. finish turns it into the response
// code and flags, in that one place.
type outcome uint8

const (
	success        outcome = iota // data in the answer section
	noData                        // the name exists, not with this type (RFC 2308 NODATA)
	nameError                     // the name does not exist (NXDOMAIN)
	delegation                    // the name is at or below a zone cut: referral
	refused                       // not ours to answer
	serverFailure                 // we cannot answer (all-down servfail, nothing published)
	formatError                   // malformed query
	notImplemented                // opcode other than QUERY
	badVersion                    // EDNS version other than 0
)

// info is what the handler needs besides the reply: what to count and
// how to write it.
type info struct {
	zone     *zoneInfo     // the zone that answered; nil for none
	svc      *serviceStats // set when a service answered the question
	choice   choice        // the selection behind svc
	transfer bool          // the reply is a whole zone, to write in envelopes
	// varies is set when the reply depends on the query's ID or the
	// client's address beyond drains (weighted, nearest, shaping): the
	// fast path must not prepack it.
	varies bool
}

// answer returns the reply to req from a client at client, received over
// TCP when tcp is set, from the snapshot st (nil: nothing published yet).
// It returns nil when nothing must be sent back. It is pure: it reads st
// and req and builds a new message.
func answer(st *state, req *dns.Msg, client netip.Addr, tcp bool) *dns.Msg {
	m, _ := respond(st, req, client, tcp)
	return m
}

// respond is answer plus what the handler counts.
func respond(st *state, req *dns.Msg, client netip.Addr, tcp bool) (*dns.Msg, info) {
	if req == nil || req.Response {
		// A response is never answered: no loops, no reflection.
		return nil, info{}
	}
	m := new(dns.Msg)
	m.SetReply(req)
	// RFC 1035 §4.1.1: RD is copied into every response; SetReply copies it
	// for QUERY only.
	m.RecursionDesired = req.RecursionDesired
	opt, nopt := requestEDNS(req)
	q := query{st: st, m: m, client: client, aa: true, id: req.Id}
	ecs, ecsOK := requestECS(opt)

	var out outcome
	switch {
	case nopt > 1: // RFC 6891 §6.1.1
		out, opt = formatError, nil
	case !ecsOK: // RFC 7871 §7.1.2
		out, ecs = formatError, nil
	case req.Opcode != dns.OpcodeQuery:
		out = notImplemented
	case len(req.Question) != 1:
		out = formatError
		m.Question = nil
	case opt != nil && opt.Version() != 0: // RFC 6891 §6.1.3
		out = badVersion
	case st == nil || st.set == nil:
		out = serverFailure
	default:
		q.ecs = ecs
		out = q.question(req, tcp)
	}

	ours := uint16(defaultUDPSize)
	if st != nil {
		ours = st.udpSize
	}
	var reply *dns.EDNS0_SUBNET
	if ecs != nil && opt != nil {
		// RFC 7871 §7.2.1: family, source prefix and address as asked,
		// and the scope the answer holds for (0: for every client).
		reply = &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: ecs.Family, SourceNetmask: ecs.SourceNetmask,
			SourceScope: uint8(q.scope), Address: ecs.Address}
	}
	finish(m, out, q.aa, opt, reply, ours, tcp, q.info.transfer)
	return m, q.info
}

// requestECS returns the EDNS Client Subnet option of the request, if
// any, and false when it is malformed (RFC 7871 §7.1.2: FORMERR): more
// than one, a scope prefix set in a query, an unknown family, or address
// bits set beyond the source prefix. miekg has already refused a source
// prefix longer than the family's addresses.
func requestECS(opt *dns.OPT) (*dns.EDNS0_SUBNET, bool) {
	if opt == nil {
		return nil, true
	}
	var ecs *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		e, ok := o.(*dns.EDNS0_SUBNET)
		if !ok {
			continue
		}
		if ecs != nil {
			return nil, false
		}
		ecs = e
	}
	if ecs == nil {
		return nil, true
	}
	if ecs.SourceScope != 0 {
		return nil, false
	}
	switch ecs.Family {
	case 0:
		return ecs, ecs.SourceNetmask == 0
	case 1, 2:
		a, ok := ecsAddr(ecs)
		if !ok {
			return nil, false
		}
		p, _ := a.Prefix(int(ecs.SourceNetmask))
		return ecs, p.Addr() == a
	}
	return nil, false
}

// ecsAddr returns the address of an ECS option, of its family.
func ecsAddr(ecs *dns.EDNS0_SUBNET) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ecs.Address)
	if !ok {
		return a, false
	}
	if ecs.Family == 1 {
		if !a.Unmap().Is4() {
			return a, false
		}
		return a.Unmap(), true
	}
	return a, true
}

// requestEDNS returns the request's OPT record, if any, and how many it
// has.
func requestEDNS(req *dns.Msg) (*dns.OPT, int) {
	var opt *dns.OPT
	n := 0
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt == nil {
				opt = o
			}
			n++
		}
	}
	return opt, n
}

// finish sets the response code and flags for out, adds our OPT record
// when the request had one, and truncates to what the transport carries.
func finish(m *dns.Msg, out outcome, aa bool, reqOpt *dns.OPT, ecs *dns.EDNS0_SUBNET, ours uint16, tcp, transfer bool) {
	switch out {
	case success, noData, delegation:
		m.Rcode = dns.RcodeSuccess
		m.Authoritative = aa
	case nameError:
		m.Rcode = dns.RcodeNameError
		m.Authoritative = aa
	default:
		switch out {
		case refused:
			m.Rcode = dns.RcodeRefused
		case formatError:
			m.Rcode = dns.RcodeFormatError
		case notImplemented:
			m.Rcode = dns.RcodeNotImplemented
		case badVersion:
			m.Rcode = dns.RcodeBadVers // extended: carried in our OPT when packed
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		m.Authoritative = false
		m.Answer, m.Ns, m.Extra = nil, nil, nil
	}

	if reqOpt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(ours)
		if reqOpt.Do() {
			o.SetDo()
		}
		if ecs != nil && m.Rcode != dns.RcodeFormatError {
			o.Option = []dns.EDNS0{ecs}
		}
		m.Extra = append(m.Extra, o)
	}
	if transfer {
		return // written in envelopes, each within 64 KiB
	}

	size := dns.MinMsgSize
	switch {
	case tcp:
		size = dns.MaxMsgSize
	case reqOpt != nil:
		// The client's buffer, capped by ours so that answers do not fragment
		// (RFC 9715); Truncate raises anything below 512 to 512.
		size = int(min(reqOpt.UDPSize(), ours))
	}
	nAnswer, nNs, nExtra := len(m.Answer), len(m.Ns), len(m.Extra)
	m.Truncate(size)
	// RFC 2181 §9: TC says that required data was left out, so a resolver
	// retries over TCP; dropping optional additional records is not a
	// reason. A referral's glue is required (RFC 9471): one that lost
	// some is truncated.
	m.Truncated = len(m.Answer) < nAnswer || len(m.Ns) < nNs ||
		out == delegation && len(m.Extra) < nExtra
}

// query is the work area of one answer.
type query struct {
	st     *state
	m      *dns.Msg
	client netip.Addr
	qtype  uint16
	aa     bool // authoritative: cleared by a referral for the question itself
	info   info
	id     uint16            // the query's ID, for per-query picks
	ecs    *dns.EDNS0_SUBNET // the query's client subnet, if any
	scope  int               // the ECS scope of the answer so far
	asked  bool              // ask is built
	ask    asker             // who asks, built on first use
}

// question answers the single question of req.
func (q *query) question(req *dns.Msg, tcp bool) outcome {
	qs := req.Question[0]
	if qs.Qclass != dns.ClassINET {
		return refused
	}
	qname := canonical(qs.Name)
	z := q.st.set.Zone(qname)
	if z == nil {
		return refused
	}
	q.qtype = qs.Qtype
	switch qs.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		q.info.zone = q.st.zone(z)
		return q.transfer(z, qname, req, tcp)
	case dns.TypeDS:
		// DS lives on the parent side of a cut (RFC 4035 §3.1.4.1): when we
		// also serve the parent zone, it answers.
		if qname == z.Origin && qname != "." {
			if p := q.st.set.Zone(parentName(qname)); p != nil {
				z = p
			}
		}
	}
	q.info.zone = q.st.zone(z)
	if isDebugName(qs.Qtype, qname) {
		if out, ok := q.debug(qname); ok {
			return out
		}
	}
	return q.resolve(z, qname)
}

// resolve runs RFC 1034 §4.3.2 from step 3 for name in z, following
// CNAMEs through every zone of the Set.
func (q *query) resolve(z *zones.Zone, name string) outcome {
	var seen [maxChain]string
	for hops := 0; ; hops++ {
		r := lookup(z, name, q.qtype)
		switch r.kind {
		case matchCut:
			if hops == 0 {
				q.aa = false
			}
			q.m.Ns = append(q.m.Ns, r.node.RRset(dns.TypeNS)...)
			for _, rr := range r.node.RRset(dns.TypeNS) {
				q.addresses(rr.(*dns.NS).Ns, true)
			}
			return delegation
		case matchNone:
			q.negative(z)
			return nameError
		}

		n := r.node
		svc := n.Service()
		if svc != nil && svc.CNAME() {
			// A CNAME service: the chosen site's name, followed like any
			// CNAME (or the answer, for a CNAME question).
			rr, out, ok := q.serviceCNAME(svc, name)
			if !ok {
				return out
			}
			q.m.Answer = append(q.m.Answer, rr)
			if q.qtype == dns.TypeCNAME || hops == maxChain {
				return success
			}
			target := rr.Target
			seen[hops] = name
			if slices.Contains(seen[:hops+1], target) {
				return success
			}
			next := q.st.set.Zone(target)
			if next == nil {
				return success
			}
			z, name = next, target
			continue
		}
		if svc != nil && isAddressQuery(q.qtype) {
			return q.service(z, svc, name)
		}
		var rrs []dns.RR
		if q.qtype == dns.TypeANY {
			rrs = anyRRset(n)
		} else {
			rrs = n.RRset(q.qtype)
		}
		if len(rrs) > 0 {
			q.m.Answer = appendOwned(q.m.Answer, rrs, name, r.wildcard)
			q.additional()
			return success
		}
		cname := n.RRset(dns.TypeCNAME)
		if len(cname) == 0 || q.qtype == dns.TypeCNAME {
			if svc := n.Service(); svc != nil {
				q.negativeService(z, svc)
			} else {
				q.negative(z)
			}
			return noData
		}

		if hops == maxChain {
			return success // over-long chain: stop at the last CNAME followed
		}
		q.m.Answer = appendOwned(q.m.Answer, cname[:1], name, r.wildcard)
		target := canonical(cname[0].(*dns.CNAME).Target)
		seen[hops] = name
		if slices.Contains(seen[:hops+1], target) {
			return success // loop: stop before going round again
		}
		next := q.st.set.Zone(target)
		if next == nil {
			return success // the zone edge: the client follows the rest
		}
		z, name = next, target
	}
}

// isAddressQuery reports whether a service answers qtype.
func isAddressQuery(qtype uint16) bool {
	return qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeANY
}

// anyRRset picks the one RRset an ANY query gets (RFC 8482 §4.1): the
// RRset with the lowest type number, so the choice is stable.
func anyRRset(n *zones.Node) []dns.RR {
	for _, t := range n.Types() {
		if rrs := n.RRset(t); len(rrs) > 0 {
			return rrs
		}
	}
	return nil
}

// appendOwned appends rrs to dst. Synthesized from a wildcard, each RR
// is a copy owned by owner; otherwise the shared RRs go in as they are.
func appendOwned(dst, rrs []dns.RR, owner string, wildcard bool) []dns.RR {
	if !wildcard {
		return append(dst, rrs...)
	}
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		dst = append(dst, c)
	}
	return dst
}

// negative adds the zone's SOA to the authority section (RFC 2308 §3).
func (q *query) negative(z *zones.Zone) {
	if neg := q.st.zone(z).neg; neg != nil {
		q.m.Ns = append(q.m.Ns, neg)
	}
}

// service answers an address query at a service owner from selection,
// per address family: A and AAAA each from the site chosen for their
// family, ANY with both.
func (q *query) service(z *zones.Zone, svc *zones.Service, owner string) outcome {
	var buf [16]netip.Addr
	a := q.asker()
	var c choice
	var addrs []netip.Addr
	if fam := familyOf(q.qtype); fam != familyAll {
		c, addrs = choose(svc, fam, a, buf[:0])
		q.chose(c)
	} else {
		c, addrs = choose(svc, familyV4, a, buf[:0])
		c6, addrs6 := choose(svc, familyV6, a, addrs[len(addrs):])
		q.chose(c)
		q.chose(c6)
		c.degraded = c.degraded && !c.none || c6.degraded && !c6.none
		if c.none {
			c = c6
		}
		if c.servfail || c6.servfail {
			c.servfail = true
		}
		addrs = append(addrs, addrs6...)
	}
	if !c.none {
		q.info.svc, q.info.choice = q.st.services[svc.Name], c
	}
	if c.servfail {
		return serverFailure
	}
	before := len(q.m.Answer)
	q.m.Answer = appendAddrs(q.m.Answer, owner, addrs, ttl(svc, c), q.qtype)
	if len(q.m.Answer) == before {
		q.negativeService(z, svc)
		return noData
	}
	return success
}

// serviceCNAME returns the CNAME a CNAME service answers with: to the
// name of the site the policy chooses, the endpoints of both families
// counted together. When no site qualifies, SERVFAIL under all_down
// servfail, else the first site of the order that is not drained: a
// CNAME has one target, so "all" and "first" are alike.
func (q *query) serviceCNAME(svc *zones.Service, owner string) (*dns.CNAME, outcome, bool) {
	var buf [16]netip.Addr
	c, _ := choose(svc, familyAll, q.asker(), buf[:0])
	q.chose(c)
	q.info.svc, q.info.choice = q.st.services[svc.Name], c
	if c.servfail {
		return nil, serverFailure, false
	}
	site := c.site
	if site < 0 {
		site = 0
		for i := range svc.Sites {
			if !drained(q.st.drains, svc, &svc.Sites[i], q.client) {
				site = i
				break
			}
		}
	}
	return &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl(svc, c)},
		Target: svc.Sites[site].CNAME}, success, true
}

// asker is who asks, for selection: built once per query.
func (q *query) asker() *asker {
	a := &q.ask
	if q.asked {
		return a
	}
	*a = asker{health: q.st.health, drains: q.st.drains, client: q.client, geo: q.client.Unmap()}
	a.geoBits = a.geo.BitLen()
	if q.ecs != nil {
		// The client subnet stands for the client (RFC 7871); a source
		// prefix of 0 asks not to be located at all.
		a.geo, a.geoBits = netip.Addr{}, 0
		if q.ecs.SourceNetmask > 0 {
			if e, ok := ecsAddr(q.ecs); ok {
				a.geo, a.geoBits = e, int(q.ecs.SourceNetmask)
			}
		}
	}
	a.hash = mix(uint64(q.id)<<48 ^ stableHash(a))
	q.asked = true
	return a
}

// chose notes what a selection means for the whole reply.
func (q *query) chose(c choice) {
	if c.varies {
		q.info.varies = true
	}
	q.scope = max(q.scope, c.scope)
}

// ttl is the TTL of an answer of svc after choice c: lowered to the
// service's degraded_ttl while the preferred site is not whole.
func ttl(svc *zones.Service, c choice) uint32 {
	if c.degraded && svc.HasDegradedTTL {
		return min(svc.TTL, svc.DegradedTTL)
	}
	return svc.TTL
}

// negativeService adds the SOA for a negative answer at a service name:
// its TTL is capped by the service's, so that "no address" is not cached
// longer than an address would be (a failback reaches caches as soon).
func (q *query) negativeService(z *zones.Zone, svc *zones.Service) {
	neg := q.st.zone(z).neg
	if neg == nil {
		return
	}
	if neg.Hdr.Ttl > svc.TTL {
		if sn := q.st.svcNeg[svc.Name]; sn != nil {
			neg = sn
		} else {
			c := *neg // a state built without the service (tests of answer)
			c.Hdr.Ttl = svc.TTL
			neg = &c
		}
	}
	q.m.Ns = append(q.m.Ns, neg)
}

// additional adds the addresses of the NS, MX and SRV targets in the
// answer section that are in our zones.
func (q *query) additional() {
	for _, rr := range q.m.Answer {
		switch rr := rr.(type) {
		case *dns.NS:
			q.addresses(rr.Ns, false)
		case *dns.MX:
			q.addresses(rr.Mx, false)
		case *dns.SRV:
			q.addresses(rr.Target, false)
		}
	}
}

// addresses adds the A and AAAA records of target to the additional
// section: static records, or a service's selected endpoints. Glue (for a
// referral) may come from below a zone cut; other additional data may not.
func (q *query) addresses(target string, glue bool) {
	name := canonical(target)
	if name == "." {
		return
	}
	for _, rr := range q.m.Extra {
		if rr.Header().Name == name {
			return
		}
	}
	z := q.st.set.Zone(name)
	if z == nil {
		return
	}
	n, ok := z.Lookup(name)
	if !ok || (!glue && occluded(z, name)) {
		return
	}
	if svc := n.Service(); svc != nil {
		if svc.CNAME() {
			return // the resolver follows the CNAME itself
		}
		var buf [16]netip.Addr
		a := q.asker()
		for _, fam := range [...]family{familyV4, familyV6} {
			c, addrs := choose(svc, fam, a, buf[:0])
			q.chose(c)
			if !c.servfail {
				q.m.Extra = appendAddrs(q.m.Extra, name, addrs, ttl(svc, c), dns.TypeANY)
			}
		}
		return
	}
	q.m.Extra = append(q.m.Extra, n.RRset(dns.TypeA)...)
	q.m.Extra = append(q.m.Extra, n.RRset(dns.TypeAAAA)...)
}

// appendAddrs appends fresh A or AAAA records for addrs, in their order,
// keeping the family qtype asks for (both for ANY).
func appendAddrs(dst []dns.RR, owner string, addrs []netip.Addr, ttl uint32, qtype uint16) []dns.RR {
	n4, n6 := 0, 0
	for _, a := range addrs {
		if a.Is4() {
			n4++
		} else {
			n6++
		}
	}
	if qtype == dns.TypeAAAA {
		n4 = 0
	}
	if qtype == dns.TypeA {
		n6 = 0
	}
	if n4+n6 == 0 {
		return dst
	}
	// One allocation per family: the RR and its address bytes together.
	var v4 []struct {
		rr dns.A
		ip [4]byte
	}
	var v6 []struct {
		rr dns.AAAA
		ip [16]byte
	}
	if n4 > 0 {
		v4 = make([]struct {
			rr dns.A
			ip [4]byte
		}, n4)
	}
	if n6 > 0 {
		v6 = make([]struct {
			rr dns.AAAA
			ip [16]byte
		}, n6)
	}
	dst = slices.Grow(dst, n4+n6)
	i4, i6 := 0, 0
	for _, a := range addrs {
		if a.Is4() && n4 > 0 {
			e := &v4[i4]
			i4++
			e.ip = a.As4()
			e.rr = dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(e.ip[:])}
			dst = append(dst, &e.rr)
		} else if !a.Is4() && n6 > 0 {
			e := &v6[i6]
			i6++
			e.ip = a.As16()
			e.rr = dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(e.ip[:])}
			dst = append(dst, &e.rr)
		}
	}
	return dst
}

// match is the kind of a lookup result.
type match uint8

const (
	matchFound match = iota // node holds the answer (maybe a wildcard)
	matchNone               // no such name
	matchCut                // node is the zone cut above or at the name
)

type lookupResult struct {
	kind     match
	node     *zones.Node
	wildcard bool // node is the wildcard that matched: synthesize
}

// lookup finds name in z (RFC 1034 §4.3.2 steps 3a to 3c, RFC 4592 for
// wildcards), without following CNAMEs. name must be canonical and in z.
func lookup(z *zones.Zone, name string, qtype uint16) lookupResult {
	if name == z.Origin {
		n, _ := z.Lookup(name)
		return lookupResult{node: n}
	}
	// Walk the names from name up to, not including, the apex: the
	// highest NS owner is the cut (a DS question at the cut itself belongs
	// to this side), and the first name that exists is the closest
	// encloser.
	var cut, exact, encloser *zones.Node
	for off := 0; len(name)-off > len(z.Origin); {
		if n, ok := z.Lookup(name[off:]); ok {
			if off == 0 {
				exact = n
			}
			if encloser == nil {
				encloser = n
			}
			if len(n.RRset(dns.TypeNS)) > 0 && (off > 0 || qtype != dns.TypeDS) {
				cut = n
			}
		}
		next, end := dns.NextLabel(name, off)
		if end {
			break
		}
		off = next
	}
	switch {
	case cut != nil:
		return lookupResult{kind: matchCut, node: cut}
	case exact != nil:
		return lookupResult{node: exact}
	}
	ce := z.Origin
	if encloser != nil {
		ce = encloser.Name
	}
	wname := "*." + ce
	if ce == "." {
		wname = "*."
	}
	// The wildcard matches only names that do not exist; it may itself be
	// an empty non-terminal, which gives NODATA (RFC 4592 §4.1).
	if w, ok := z.Lookup(wname); ok {
		return lookupResult{node: w, wildcard: true}
	}
	return lookupResult{kind: matchNone}
}

// occluded reports whether name is at or below a zone cut in z, where
// address records are glue rather than authoritative data.
func occluded(z *zones.Zone, name string) bool {
	for off := 0; len(name)-off > len(z.Origin); {
		if n, ok := z.Lookup(name[off:]); ok && len(n.RRset(dns.TypeNS)) > 0 {
			return true
		}
		next, end := dns.NextLabel(name, off)
		if end {
			break
		}
		off = next
	}
	return false
}

// parentName returns name without its first label; "." for a TLD.
func parentName(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// canonical is dns.CanonicalName with a fast path for names already
// canonical, which zone data and most queries are.
func canonical(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return dns.CanonicalName(name)
		}
	}
	if !dns.IsFqdn(name) {
		return dns.CanonicalName(name)
	}
	return name
}
