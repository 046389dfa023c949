package resolver

import (
	"encoding/binary"
	"net/netip"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// The fast path answers the common shapes of UDP query straight from the
// wire, with replies prepacked at publish time:
//
//   - At publish, for every owner name of every zone and the types A,
//     AAAA and those present at the name, the general path (respond) is
//     run on a plain query and its reply packed. What follows the question
//     is kept as a template, with the header and what to count. Per zone
//     the NXDOMAIN reply and once the REFUSED reply are prepacked too.
//   - Per query, the packet is parsed without unpacking it: a QUERY with
//     one question of class IN, a name of plain characters, and no other
//     record than an OPT (version 0, options miekg unpacks without error).
//     The reply is the template's header with the ID, RD and CD of the
//     query, the query's question bytes as they came (the case of the name
//     included), the template, and our OPT when the query had one.
//
// The general path stays the reference: a template is only what respond
// returned, and anything the fast path does not recognise (other shapes,
// a reply that needs truncation or compression, an answer that depends
// on the client's address) goes to respond. TestFastPathMatchesGeneral
// holds the two byte for byte.
//
// A template that read health or drains records what it read; the next
// publish with the same zones.Set reuses it when every recorded reading
// still holds, so a health change rebuilds only the answers it touches.

// fastAnswer is one prepacked reply.
type fastAnswer struct {
	hdr   [12]byte // ID 0, RD and CD clear, QDCOUNT 1, ARCOUNT without OPT
	rest  []byte   // the sections after the question, packed
	rcode int
	zone  *zoneStats    // counted under this zone label
	svc   *serviceStats // set when a service answered
	slot  int           // svc's counter
	// deps are the readings of health and drains the reply was built on;
	// nil for a reply that read neither.
	deps []reading
	// dynamic is set when the reply read health or drains.
	dynamic bool
}

// reading is one call to Health.Up or Drains.Drained while building a
// template, and what it returned.
type reading struct {
	drain bool // Drained(service, site); otherwise Up(a)
	a, b  string
	value bool
}

// fastName holds the templates of one owner name, by qtype.
type fastName struct {
	types []uint16
	ans   []*fastAnswer
}

func (f *fastName) get(qtype uint16) *fastAnswer {
	for i, t := range f.types {
		if t == qtype {
			return f.ans[i]
		}
	}
	return nil
}

// fastTable is what a published state answers the fast path from.
type fastTable struct {
	names   map[string]*fastName
	refused *fastAnswer
}

// ClientScoped may be implemented by a [Drains] to say whether a drain in
// force for service and site is limited to some clients. An answer that
// consults a site for which it returns false is the same for every
// client and can be prepacked; a Drains without the method makes every
// service answer that consults it go through the general path.
type ClientScoped interface {
	ClientScoped(service, site string) bool
}

// recorder stands in for the state's Health and Drains while a template
// is built, recording what was read.
type recorder struct {
	h         Health
	d         Drains
	reads     []reading
	dependent bool // an answer read a drain that depends on the client
}

func (r *recorder) Up(id string) bool {
	v := isUp(r.h, id)
	r.reads = append(r.reads, reading{a: id, value: v})
	return v
}

func (r *recorder) Drained(service, site string, client netip.Addr) bool {
	if r.d == nil {
		r.reads = append(r.reads, reading{drain: true, a: service, b: site})
		return false
	}
	if cs, ok := r.d.(ClientScoped); !ok || cs.ClientScoped(service, site) {
		r.dependent = true
	}
	v := r.d.Drained(service, site, client)
	r.reads = append(r.reads, reading{drain: true, a: service, b: site, value: v})
	return v
}

// holds reports whether every reading of a still gives the same result
// under st.
func (a *fastAnswer) holds(st *state) bool {
	for _, rd := range a.deps {
		var v bool
		if rd.drain {
			if st.drains != nil {
				if cs, ok := st.drains.(ClientScoped); !ok || cs.ClientScoped(rd.a, rd.b) {
					return false
				}
				v = st.drains.Drained(rd.a, rd.b, netip.Addr{})
			}
		} else {
			v = isUp(st.health, rd.a)
		}
		if v != rd.value {
			return false
		}
	}
	return true
}

// templateTypes are the types prepacked at every owner name, besides
// those present there.
var templateTypes = [...]uint16{dns.TypeA, dns.TypeAAAA}

// buildFast prepacks the replies of st, reusing those of prev that still
// hold. It is called by Publish, after the stats are attached.
func buildFast(st, prev *state, none *zoneStats) *fastTable {
	if st.set == nil {
		return nil // SERVFAIL, from the general path
	}
	ft := &fastTable{names: make(map[string]*fastName)}
	var old *fastTable
	if prev != nil && prev.set == st.set && prev.udpSize == st.udpSize && prev.fast != nil {
		old = prev.fast
	}
	ft.refused = &fastAnswer{hdr: header(dns.RcodeRefused, false, 0, 0), rcode: dns.RcodeRefused, zone: none}

	b := &builder{st: st, none: none}
	for _, z := range st.set.Zones() {
		zi := st.zones[z.Origin]
		zi.nx = b.negative(z, zi)
		z.Nodes(func(n *zones.Node) bool {
			if n.Empty() || ft.names[n.Name] != nil {
				return true
			}
			fn := &fastName{}
			var oldFn *fastName
			if old != nil {
				oldFn = old.names[n.Name]
			}
			add := func(t uint16) {
				if fn.get(t) != nil || t == dns.TypeAXFR || t == dns.TypeIXFR {
					return
				}
				var a *fastAnswer
				if oldFn != nil {
					if o := oldFn.get(t); o != nil && (!o.dynamic || o.holds(st)) {
						a = o
					}
				}
				if a == nil {
					a = b.build(n.Name, t)
				}
				if a != nil {
					fn.types = append(fn.types, t)
					fn.ans = append(fn.ans, a)
				}
			}
			for _, t := range templateTypes {
				add(t)
			}
			for _, t := range n.Types() {
				add(t)
			}
			if len(fn.types) > 0 {
				ft.names[n.Name] = fn
			}
			return true
		})
	}
	return ft
}

// builder runs the general path on a copy of the state whose health and
// drains are a recorder.
type builder struct {
	st   *state
	none *zoneStats
	rec  recorder
	tmp  state
	buf  []byte
}

// build returns the template of name and qtype, or nil when the reply
// cannot be prepacked: it depends on the client or the query (a drain
// limited to clients, a weighted or nearest service, answer shaping),
// needs truncation or compression, or the general path panicked.
func (b *builder) build(name string, qtype uint16) (a *fastAnswer) {
	defer func() {
		if recover() != nil {
			a = nil // the query path will answer SERVFAIL and count the panic
		}
	}()
	b.rec = recorder{h: b.st.health, d: b.st.drains}
	b.tmp = *b.st
	b.tmp.health, b.tmp.drains = &b.rec, &b.rec

	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	req.RecursionDesired = false
	req.SetEdns0(b.st.udpSize, false)
	m, in := respond(&b.tmp, req, netip.Addr{}, false)
	if m == nil || m.Truncated || m.Compress || in.transfer || in.varies || b.rec.dependent || m.Rcode > 0xF {
		return nil
	}
	if len(m.Extra) == 0 || m.Extra[len(m.Extra)-1].Header().Rrtype != dns.TypeOPT {
		return nil
	}
	m.Extra = m.Extra[:len(m.Extra)-1]
	var err error
	b.buf, err = m.PackBuffer(b.buf)
	if err != nil {
		return nil
	}
	qlen := len(name) + 1 + 4
	if name == "." {
		qlen = 1 + 4
	}
	a = &fastAnswer{rest: append([]byte(nil), b.buf[12+qlen:]...), rcode: m.Rcode, zone: b.none, slot: -1}
	copy(a.hdr[:], b.buf[:12])
	if in.zone != nil && in.zone.stats != nil {
		a.zone = in.zone.stats
	}
	if in.svc != nil {
		a.svc, a.slot = in.svc, in.svc.slot(in.choice)
	}
	if len(b.rec.reads) > 0 {
		a.dynamic = true
		a.deps = append([]reading(nil), b.rec.reads...)
	}
	return a
}

// negative returns the NXDOMAIN reply of zone z: the negative SOA in the
// authority section.
func (b *builder) negative(z *zones.Zone, zi *zoneInfo) *fastAnswer {
	a := &fastAnswer{rcode: dns.RcodeNameError, zone: b.none, slot: -1}
	if zi.stats != nil {
		a.zone = zi.stats
	}
	ns := 0
	if zi.neg != nil {
		buf := make([]byte, dns.Len(zi.neg)+16)
		off, err := dns.PackRR(zi.neg, buf, 0, nil, false)
		if err != nil {
			return nil
		}
		a.rest = buf[:off]
		ns = 1
	}
	a.hdr = header(dns.RcodeNameError, true, 0, ns)
	return a
}

// header returns a reply header with QDCOUNT 1 and no OPT counted.
func header(rcode int, aa bool, an, ns int) [12]byte {
	var h [12]byte
	h[2] = 0x80 // QR
	if aa {
		h[2] |= 0x04
	}
	h[3] = byte(rcode & 0xF)
	binary.BigEndian.PutUint16(h[4:], 1)
	binary.BigEndian.PutUint16(h[6:], uint16(an))
	binary.BigEndian.PutUint16(h[8:], uint16(ns))
	return h
}

// fastQuery is what parse found in a query packet.
type fastQuery struct {
	name    []byte // canonical (lower case), fully qualified, in presentation form
	qlen    int    // length of the question on the wire
	qtype   uint16
	edns    bool
	do      bool
	udpSize uint16
}

// parse reads pkt as a query the fast path answers, writing the canonical
// name into name (at least 256 bytes). It returns false for anything
// else: the general path decides about those.
func parse(pkt []byte, name []byte) (fastQuery, bool) {
	var q fastQuery
	if len(pkt) < 12+5 {
		return q, false
	}
	// QR clear and opcode QUERY; the other flags are the general path's
	// business only through RD and CD, which are copied.
	if pkt[2]&0xF8 != 0 {
		return q, false
	}
	if binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return q, false
	}
	ar := binary.BigEndian.Uint16(pkt[10:])
	if ar > 1 {
		return q, false
	}
	off := 12
	n := 0
	for {
		if off >= len(pkt) {
			return q, false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || n+l+1 > 254 {
			return q, false // a pointer, an extended label type, or too long
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '*':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return q, false // escaped in presentation form: leave it to miekg
			}
			name[n] = c
			n++
		}
		name[n] = '.'
		n++
		off += l
	}
	if n == 0 {
		name[0] = '.'
		n = 1
	}
	if off+4 > len(pkt) {
		return q, false
	}
	q.name = name[:n]
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	if binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET {
		return q, false
	}
	off += 4
	q.qlen = off - 12
	if ar == 0 {
		return q, off == len(pkt)
	}
	// The OPT record: root owner, type OPT, version 0.
	if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != dns.TypeOPT || pkt[off+6] != 0 {
		return q, false
	}
	q.edns = true
	q.udpSize = binary.BigEndian.Uint16(pkt[off+3:])
	q.do = pkt[off+7]&0x80 != 0
	rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
	off += 11
	if off+rdlen != len(pkt) {
		return q, false
	}
	for end := off + rdlen; off < end; {
		if off+4 > end {
			return q, false
		}
		code := binary.BigEndian.Uint16(pkt[off:])
		l := int(binary.BigEndian.Uint16(pkt[off+2:]))
		off += 4 + l
		if off > end || !ignorableOption(code) {
			return q, false
		}
	}
	return q, true
}

// ignorableOption reports whether miekg unpacks an EDNS option of code
// without error whatever its data, so that a query carrying it is one
// the general path would see. We answer no option, so the rest is
// ignored.
func ignorableOption(code uint16) bool {
	switch code {
	case dns.EDNS0NSID, dns.EDNS0COOKIE, dns.EDNS0PADDING:
		return true
	case dns.EDNS0LLQ, dns.EDNS0UL, dns.EDNS0DAU, dns.EDNS0DHU, dns.EDNS0N3U, dns.EDNS0SUBNET,
		dns.EDNS0EXPIRE, dns.EDNS0TCPKEEPALIVE, dns.EDNS0EDE, dns.EDNS0ESU, dns.EDNS0REPORTING,
		dns.EDNS0ZONEVERSION:
		return false // typed options whose unpacking can fail
	}
	return true // unknown: kept as opaque bytes
}

// fastHit is what the fast path found for a query.
type fastHit struct {
	a     *fastAnswer
	q     fastQuery
	reply []byte
}

// fast answers pkt from st into out, when it can. name is scratch space
// of at least 256 bytes. It reads st only and allocates nothing for names
// that have a template; an NXDOMAIN or REFUSED reply costs the one
// allocation of the name's string.
func fast(st *state, pkt, out, name []byte) (fastHit, bool) {
	ft := st.fast
	if ft == nil {
		return fastHit{}, false
	}
	q, ok := parse(pkt, name)
	if !ok || q.qtype == dns.TypeTXT && len(q.name) > len(debugPrefix) && string(q.name[:len(debugPrefix)]) == debugPrefix {
		// A debug answer depends on the client: the general path.
		return fastHit{}, false
	}
	var a *fastAnswer
	if fn := ft.names[string(q.name)]; fn != nil {
		a = fn.get(q.qtype)
	} else if q.qtype != dns.TypeAXFR && q.qtype != dns.TypeIXFR {
		qname := string(q.name)
		if z := st.set.Zone(qname); z == nil {
			a = ft.refused
		} else if lookup(z, qname, q.qtype).kind == matchNone {
			a = st.zones[z.Origin].nx
		}
	}
	if a == nil {
		return fastHit{}, false
	}
	size := dns.MinMsgSize
	need := 12 + q.qlen + len(a.rest)
	if q.edns {
		size = max(int(min(q.udpSize, st.udpSize)), dns.MinMsgSize)
		need += 11
	}
	if need > size {
		return fastHit{}, false // the general path truncates or compresses
	}
	out = append(out[:0], a.hdr[:]...)
	out[0], out[1] = pkt[0], pkt[1]
	out[2] |= pkt[2] & 0x01 // RD
	out[3] |= pkt[3] & 0x10 // CD
	out = append(out, pkt[12:12+q.qlen]...)
	out = append(out, a.rest...)
	if q.edns {
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
		var flags byte
		if q.do {
			flags = 0x80
		}
		out = append(out, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(st.udpSize>>8), byte(st.udpSize), 0, 0, flags, 0, 0, 0)
	}
	return fastHit{a: a, q: q, reply: out}, true
}
