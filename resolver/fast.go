package resolver

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync/atomic"
	"unsafe"

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
// on the client's address or on chance) goes to respond.
// TestFastPathMatchesGeneral holds the two byte for byte.
//
// # Layout
//
// The templates live in one byte arena, found through one open-addressing
// hash table, so that the cost of a query does not grow with the number
// of names: it touches one slot of the table, one record of the arena
// (the name and its templates, contiguous) and one answer counter
// (metrics.go), where a map of pointers to per-name objects would chase
// five or six pointers into memory that no cache holds once there are
// 100,000 services. The arena holds no pointers, so the garbage
// collector does not scan it either.
//
// A slot is a uint64: the high 32 bits of the name's hash, then the
// record's offset in the arena plus one (0: empty), so that a probe
// reads the arena only for a name whose tag matches. The table is at
// most three quarters full; probing is linear. A name record is:
//
//	u32  index of the record's readings in fastTable.deps; noDeps for a
//	     name whose replies read neither health nor drains
//	u8   length L of the name, then the name: canonical presentation form
//	u8   number of templates, with the bit absentNoData set when every
//	     type the name does not own is answered with its zone's NODATA
//	     reply; then, with the bit, u16 the zone's index; then the
//	     templates
//
// and a template (little-endian fields) is:
//
//	u16  qtype
//	u16  length R of the packed sections after the question
//	u16  zone counted under (index into fastTable.zones), with the bit
//	     sharedTail set when the sections are a shared tail
//	u16  counter cell of qtype and rcode in that zone's counters
//	u32  global slot of the service answer counter, or noSlot
//	[12] the reply header: ID 0, RD and CD clear, QDCOUNT 1, ARCOUNT without OPT
//	[R]  the sections after the question, packed; with sharedTail
//	     instead u32, the offset of the R bytes in fastTable.tails
//
// The sections of a negative reply (NODATA: the SOA in the authority
// section, nothing else) are the same for every name of a zone, or of
// the services of one TTL, and are kept once, in the tails: at a million
// names that is most of a record's bytes.
//
// The NXDOMAIN and NODATA replies of the zones and the REFUSED reply are
// templates outside any name record (their qtype and cell unused: the
// query's qtype decides the cell). A static name (most names of a large
// zone) keeps no template for the types it does not own, A or AAAA
// among them: the absentNoData bit sends those to its zone's NODATA
// reply, once the build has checked that the general path gives that
// reply for one of them.
//
// # Reuse
//
// The replies of a name that read health or drains record what they read
// (the name's readings). The next publish with the same zones.Set copies
// a name's record as it is when every reading still gives the same
// result, so a health change rebuilds only the names whose answers it
// touches: checking a name costs a map lookup per reading, rebuilding it
// runs and packs the general path once per template.

// fastTable is what a published state answers the fast path from.
type fastTable struct {
	seed  maphash.Seed
	slots []uint64
	mask  uint64
	arena []byte
	// zones are the request counters templates count under, by index.
	zones []*zoneStats
	// counters are the state's answer counter chunks.
	counters [][]atomic.Uint64
	// refused is the offset of the REFUSED template.
	refused int
	// nodata holds, by zone index, the offset plus one of the zone's
	// NODATA template (0: none).
	nodata []uint32
	// names is the number of name records.
	names int
	// chancy is set when the set has services whose answers cannot be
	// prepacked: every reply is then checked for them.
	chancy bool
	// tails holds the shared sections of negative replies. Like the
	// arena it is only ever appended to, past the end any older table
	// reads, and shared by the tables of one zones.Set.
	tails []byte
	// Read and written at publish only: the readings of each name record
	// that has any and its offset, by the record's index; how many bytes
	// of the arena are records no longer in the table; and the offsets of
	// the tails by their bytes (shared by the tables that share tails).
	deps    [][]reading
	recs    []int
	garbage int
	tailIdx map[string]uint32
}

// Sizes and marks in the arena.
const (
	tmplHdrLen = 24
	maxTmpls   = 127
	// absentNoData marks, in a record's count of templates, that the
	// types without a template get the zone's NODATA reply.
	absentNoData = 0x80
	// sharedTail marks, in a template's zone field, sections kept in
	// fastTable.tails.
	sharedTail = 0x8000
	// maxZones is how many zones a template can name: the zone field
	// without sharedTail, less one for "none".
	maxZones = sharedTail - 1
	// noDeps is the index of a record without readings.
	noDeps = ^uint32(0)
)

// reading is one call to Health.Up or Drains.Drained while building a
// name's templates, and what it returned; or a mark that the name must
// be rebuilt at the next publish.
type reading struct {
	kind  readingKind
	value bool
	a, b  string
}

type readingKind uint8

const (
	readUp      readingKind = iota // Up(a)
	readDrained                    // Drained(a, b)
	readRebuild                    // a template was left out for reasons the next publish may not have
)

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
	r.add(reading{kind: readUp, a: id, value: v})
	return v
}

func (r *recorder) Drained(service, site string, client netip.Addr) bool {
	if r.d == nil {
		r.add(reading{kind: readDrained, a: service, b: site})
		return false
	}
	if cs, ok := r.d.(ClientScoped); !ok || cs.ClientScoped(service, site) {
		r.dependent = true
	}
	v := r.d.Drained(service, site, client)
	r.add(reading{kind: readDrained, a: service, b: site, value: v})
	return v
}

func (r *recorder) add(rd reading) { r.reads = addReading(r.reads, rd) }

// addReading appends rd to reads unless the last few readings hold it
// already: a selection reads an endpoint once per family, and the
// templates of one name (A, AAAA, ANY) read the same endpoints.
func addReading(reads []reading, rd reading) []reading {
	for i := len(reads) - 1; i >= 0 && i >= len(reads)-16; i-- {
		if reads[i] == rd {
			return reads
		}
	}
	return append(reads, rd)
}

// holds reports whether every reading still gives the same result under
// st.
func holds(deps []reading, st *state) bool {
	for _, rd := range deps {
		var v bool
		switch rd.kind {
		case readRebuild:
			return false
		case readDrained:
			if st.drains != nil {
				if cs, ok := st.drains.(ClientScoped); !ok || cs.ClientScoped(rd.a, rd.b) {
					return false
				}
				v = st.drains.Drained(rd.a, rd.b, netip.Addr{})
			}
		default:
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

// hash returns the table hash of a canonical name.
func (ft *fastTable) hash(name string) uint64 { return maphash.String(ft.seed, name) }

// find returns the offset of the record of name, whose hash is h.
func (ft *fastTable) find(name string, h uint64) (int, bool) {
	tag := uint32(h >> 32)
	for i := h & ft.mask; ; i = (i + 1) & ft.mask {
		s := ft.slots[i]
		if s == 0 {
			return 0, false
		}
		if uint32(s>>32) != tag {
			continue
		}
		off := int(uint32(s)) - 1
		l := int(ft.arena[off+4])
		if l == len(name) && string(ft.arena[off+5:off+5+l]) == string(name) {
			return off, true
		}
	}
}

// recordName returns the name of the record at rec, pointing into the
// arena.
func (ft *fastTable) recordName(rec int) string {
	l := int(ft.arena[rec+4])
	return unsafe.String(&ft.arena[rec+5], l)
}

// template returns the offset of the template of qtype in the name
// record at rec.
func (ft *fastTable) template(rec int, qtype uint16) (int, bool) {
	a := ft.arena
	off, n := ft.templates(rec)
	for range n {
		if binary.LittleEndian.Uint16(a[off:]) == qtype {
			return off, true
		}
		off += tmplLen(a, off)
	}
	return 0, false
}

// absent returns the offset of the NODATA template for the types the
// name record at rec holds no template for, if it has one.
func (ft *fastTable) absent(rec int) (int, bool) {
	a := ft.arena
	off := rec + 5 + int(a[rec+4])
	if a[off]&absentNoData == 0 {
		return 0, false
	}
	z := binary.LittleEndian.Uint16(a[off+1:])
	if int(z) >= len(ft.nodata) || ft.nodata[z] == 0 {
		return 0, false
	}
	return int(ft.nodata[z]) - 1, true
}

// absentType reports whether a query of qtype at a static name that does
// not own the type gets the zone's NODATA reply from the general path:
// every type but ANY (RFC 8482: the lowest RRset), the transfers, and DS
// (answered from the parent's side at a zone's apex).
func absentType(qtype uint16) bool {
	switch qtype {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeDS:
		return false
	}
	return true
}

// tmplSlot returns the global slot of the service answer counter of the
// template at off in the arena a, or noSlot.
func tmplSlot(a []byte, off int) uint32 { return binary.LittleEndian.Uint32(a[off+8:]) }

// tmplLen returns the length of the template at off in the arena a.
func tmplLen(a []byte, off int) int {
	if binary.LittleEndian.Uint16(a[off+4:])&sharedTail != 0 {
		return tmplHdrLen + 4
	}
	return tmplHdrLen + int(binary.LittleEndian.Uint16(a[off+2:]))
}

// sections returns the packed sections after the question of the
// template at t: in the arena, or a shared tail.
func (ft *fastTable) sections(t int) []byte {
	a := ft.arena[t:]
	n := int(binary.LittleEndian.Uint16(a[2:]))
	if binary.LittleEndian.Uint16(a[4:])&sharedTail != 0 {
		off := int(binary.LittleEndian.Uint32(a[tmplHdrLen:]))
		return ft.tails[off : off+n]
	}
	return a[tmplHdrLen : tmplHdrLen+n]
}

// recordEnd returns the offset just past the name record at rec.
func (ft *fastTable) recordEnd(rec int) int {
	off, n := ft.templates(rec)
	for range n {
		off += tmplLen(ft.arena, off)
	}
	return off
}

// templates returns the offset of the first template of the name record
// at rec and how many it has: they follow the name, the count byte and,
// with absentNoData set, the zone index.
func (ft *fastTable) templates(rec int) (off, n int) {
	a := ft.arena
	off = rec + 5 + int(a[rec+4])
	n = int(a[off] &^ absentNoData)
	if a[off]&absentNoData != 0 {
		off += 2
	}
	return off + 1, n
}

// insert adds the record at off, of hash h, to the table, growing it to
// stay at most three quarters full.
func (ft *fastTable) insert(h uint64, off int) {
	if 4*(ft.names+1) > 3*len(ft.slots) {
		ft.resize(2 * (ft.names + 1))
	}
	ft.put(h, off)
	ft.names++
}

func (ft *fastTable) put(h uint64, off int) {
	for i := h & ft.mask; ; i = (i + 1) & ft.mask {
		if ft.slots[i] == 0 {
			ft.slots[i] = h&^0xFFFFFFFF | uint64(off+1)
			return
		}
	}
}

// resize makes room for n names, three quarters full at most.
func (ft *fastTable) resize(n int) {
	size := 16
	for 3*size < 4*n {
		size *= 2
	}
	old := ft.slots
	ft.slots, ft.mask = make([]uint64, size), uint64(size-1)
	for _, s := range old {
		if s != 0 {
			off := int(uint32(s)) - 1
			ft.put(ft.hash(ft.recordName(off)), off)
		}
	}
}

// buildFast prepacks the replies of st, reusing those of prev that still
// hold. It is called by Publish, after the stats are attached.
func buildFast(st, prev *state, none *zoneStats) *fastTable {
	if st.set == nil {
		return nil // SERVFAIL, from the general path
	}
	if len(st.set.Zones()) > maxZones {
		return nil // more zones than a template can name: the general path
	}
	var old *fastTable
	if prev != nil && prev.set == st.set && prev.udpSize == st.udpSize && prev.fast != nil {
		old = prev.fast
	}
	// Zone indexes follow the set's order, so that a record copied from
	// the table before counts under the same zone.
	ft := &fastTable{counters: st.counters, zones: []*zoneStats{none}}
	b := &builder{st: st, ft: ft, zoneIdx: make(map[*zoneInfo]uint16)}
	for _, z := range st.set.Zones() {
		zi := st.zones[z.Origin]
		b.zoneIdx[zi] = uint16(len(ft.zones))
		ft.zones = append(ft.zones, zi.stats)
	}
	if old != nil {
		ft.chancy = old.chancy // the same services
	} else {
		for _, svc := range st.set.Services() {
			if !prepackable(svc) {
				ft.chancy = true
				break
			}
		}
	}
	if old != nil && old.garbage <= len(old.arena)/2 {
		b.refresh(prev)
		return ft
	}

	count := 0
	if old != nil {
		ft.seed = old.seed
		count = old.names
		ft.arena = make([]byte, 0, len(old.arena)-old.garbage)
		ft.deps = make([][]reading, 0, len(old.deps))
		ft.recs = make([]int, 0, len(old.recs))
		ft.tails, ft.tailIdx = old.tails, old.tailIdx
	} else {
		ft.seed = maphash.MakeSeed()
		ft.tailIdx = make(map[string]uint32)
		for _, z := range st.set.Zones() {
			z.Nodes(func(*zones.Node) bool { count++; return true })
		}
		// A static name with one RR takes about 80 bytes.
		ft.arena = make([]byte, 0, 80*count)
	}
	b.doubling = true
	ft.resize(count)

	ft.refused = b.appendTemplate(0, header(dns.RcodeRefused, false, 0, 0), nil, nil, noSlot)
	ft.nodata = make([]uint32, len(ft.zones))
	const sample = 4096
	built := 0
	for _, z := range st.set.Zones() {
		zi := st.zones[z.Origin]
		zi.nx = b.negative(z, zi, dns.RcodeNameError)
		if i := b.zoneIdx[zi]; zi.stats != nil && i != 0 {
			ft.nodata[i] = b.negative(z, zi, dns.RcodeSuccess)
		}
		z.Nodes(func(n *zones.Node) bool {
			if n.Empty() || len(n.Name) > 255 {
				return true
			}
			h := ft.hash(n.Name)
			if _, ok := ft.find(n.Name, h); ok {
				return true // a name in two zones: a cut, or the apex of a child
			}
			if old != nil {
				if rec, ok := old.find(n.Name, h); ok {
					idx := binary.LittleEndian.Uint32(old.arena[rec:])
					if idx == noDeps || holds(old.deps[idx], st) {
						off := len(ft.arena)
						ft.arena = append(ft.arena, old.arena[rec:old.recordEnd(rec)]...)
						if idx != noDeps {
							ft.track(off, old.deps[idx])
						}
						ft.insert(h, off)
						return true
					}
				}
			}
			off := b.record(z, n, noDeps)
			if deps := b.deps(); deps != nil {
				ft.track(off, deps)
			}
			ft.insert(h, off)
			if built++; built == sample && old == nil {
				// The names come in no particular order: the first few
				// thousand tell how large the arena will be.
				want := len(ft.arena) / sample * count * 17 / 16
				if want > cap(ft.arena) {
					ft.arena = slices.Grow(ft.arena, want-len(ft.arena))
				}
			}
			return true
		})
	}
	if cap(ft.arena) > len(ft.arena)+len(ft.arena)/8 {
		// Room for a few refreshes, not for a doubling's worth.
		ft.arena = append(make([]byte, 0, len(ft.arena)+len(ft.arena)/16), ft.arena...)
	}
	return ft
}

// track notes the readings of the record at off, which the next publish
// checks.
func (ft *fastTable) track(off int, deps []reading) {
	binary.LittleEndian.PutUint32(ft.arena[off:], uint32(len(ft.deps)))
	ft.deps = append(ft.deps, deps)
	ft.recs = append(ft.recs, off)
}

// refresh makes b.ft the table of prev with the records whose readings no
// longer hold rebuilt: the cost of a publish that changes health or
// drains grows with the names it touches, plus one pass over the
// readings, not with the size of the zones. The arena is shared with
// prev's table: the rebuilt records are appended past its end, where no
// reader of an older table looks, and the table's slot for each points to
// the new record. The old record stays behind as garbage until a publish
// finds more garbage than records and builds the arena anew.
func (b *builder) refresh(prev *state) {
	old, ft, st := prev.fast, b.ft, b.st
	ft.seed, ft.mask, ft.names, ft.garbage = old.seed, old.mask, old.names, old.garbage
	ft.slots = slices.Clone(old.slots)
	ft.arena = old.arena
	ft.tails, ft.tailIdx = old.tails, old.tailIdx
	ft.refused = old.refused
	ft.nodata = old.nodata
	ft.deps = slices.Clone(old.deps)
	ft.recs = slices.Clone(old.recs)
	for origin, zi := range st.zones {
		if pz := prev.zones[origin]; pz != nil {
			zi.nx = pz.nx
		}
	}
	zs := st.set.Zones()
	for i, deps := range ft.deps {
		if holds(deps, st) {
			continue
		}
		off := ft.recs[i]
		name := ft.recordName(off)
		var n *zones.Node
		var nz *zones.Zone
		for _, z := range zs {
			if nd, ok := z.Lookup(name); ok && !nd.Empty() {
				n, nz = nd, z // the first zone with the name, as the full build takes it
				break
			}
		}
		if n == nil {
			continue // not in the set: cannot be
		}
		h := ft.hash(name)
		end := ft.recordEnd(off)
		noff := b.record(nz, n, uint32(i))
		ft.deps[i], ft.recs[i] = b.deps(), noff
		ft.garbage += end - off
		for j := h & ft.mask; ; j = (j + 1) & ft.mask {
			if int(uint32(ft.slots[j]))-1 == off {
				ft.slots[j] = h&^0xFFFFFFFF | uint64(noff+1)
				break
			}
		}
	}
}

// prepackable reports whether the answers of svc are the same for every
// client and every query, given health and drains, so that they can be
// prepacked: failover's are; a policy that looks at the client's address
// or draws at random is answered by the general path.
func prepackable(svc *zones.Service) bool { return svc.Policy == zones.Failover }

// builder runs the general path on a copy of the state whose health and
// drains are a recorder, and appends the templates to the arena.
type builder struct {
	st      *state
	ft      *fastTable
	zoneIdx map[*zoneInfo]uint16
	rec     recorder
	tmp     state
	buf     []byte
	reads   []reading
	req     *dns.Msg // the query the templates are built from
	// doubling grows the arena by doubling, when it is built anew: the
	// usual growth of a large slice by a quarter copies a large arena
	// many times over. A refresh grows it the usual way.
	doubling bool
}

// reserve makes room for n more bytes in the arena.
func (b *builder) reserve(n int) {
	a := b.ft.arena
	if cap(a)-len(a) >= n || !b.doubling {
		return
	}
	b.ft.arena = slices.Grow(a, max(n, len(a)))
}

// record appends the record of node n of zone z, index idx, with every
// template that can be prepacked, and returns its offset. A record may
// hold no template: its readings say when to try again.
func (b *builder) record(z *zones.Zone, n *zones.Node, idx uint32) int {
	ft := b.ft
	b.reserve(4 + 1 + len(n.Name) + 1 + 2)
	off := len(ft.arena)
	ft.arena = binary.LittleEndian.AppendUint32(ft.arena, idx)
	ft.arena = append(ft.arena, byte(len(n.Name)))
	ft.arena = append(ft.arena, n.Name...)
	count := len(ft.arena)
	ft.arena = append(ft.arena, 0)
	b.reads = b.reads[:0]
	present := n.Types()
	// A static name whose zone is the one that answers for it (not the
	// parent's side of a cut that is also a served zone's apex) may send
	// the types it does not own to the zone's NODATA reply: when one of
	// them, built, turns out to be that reply, and every type it owns has
	// a template.
	nodata, zone := -1, uint16(0)
	static := n.Service() == nil && b.st.set.Zone(n.Name) == z
	allPresent := true
	var types [maxTmpls]uint16
	k := 0
	add := func(t uint16, owned bool) {
		if t == dns.TypeAXFR || t == dns.TypeIXFR {
			return
		}
		for _, have := range types[:k] {
			if have == t {
				return
			}
		}
		if k == maxTmpls {
			allPresent = allPresent && !owned
			return
		}
		start := len(ft.arena)
		if !b.build(n.Name, t) {
			allPresent = allPresent && !owned
			return
		}
		if static && !owned {
			if i, ok := b.isNoData(start); ok && (nodata < 0 || zone == i) {
				// Dropped: the bit stands for it.
				ft.arena = ft.arena[:start]
				nodata, zone = start, i
				return
			}
		}
		types[k] = t
		k++
	}
	for _, t := range templateTypes {
		add(t, slices.Contains(present, t))
	}
	for _, t := range present {
		add(t, true)
	}
	ft.arena[count] = byte(k)
	if nodata >= 0 {
		if allPresent {
			ft.arena[count] |= absentNoData
			ft.arena = slices.Insert(ft.arena, count+1, byte(zone), byte(zone>>8))
		} else {
			// The bit cannot stand for the dropped types: build them back.
			for _, t := range templateTypes {
				if !slices.Contains(present, t) && !slices.Contains(types[:k], t) && b.build(n.Name, t) {
					types[k] = t
					k++
				}
			}
			ft.arena[count] = byte(k)
		}
	}
	return off
}

// isNoData reports whether the template at off is its zone's NODATA
// template, but for its qtype and counter cell, and returns the zone's
// index.
func (b *builder) isNoData(off int) (uint16, bool) {
	ft := b.ft
	a := ft.arena[off:]
	zone := binary.LittleEndian.Uint16(a[4:]) &^ sharedTail
	if zone == 0 || int(zone) >= len(ft.nodata) || ft.nodata[zone] == 0 {
		return 0, false
	}
	nd := ft.arena[int(ft.nodata[zone])-1:]
	l := tmplLen(a, 0)
	if l != tmplLen(nd, 0) || string(a[2:6]) != string(nd[2:6]) || string(a[8:l]) != string(nd[8:l]) {
		return 0, false
	}
	return zone, true
}

// deps returns a copy of the readings of the record built last.
func (b *builder) deps() []reading {
	if len(b.reads) == 0 {
		return nil
	}
	return append([]reading(nil), b.reads...)
}

// build appends the template of name and qtype to the arena and reports
// whether it did; it does not when the reply cannot be prepacked: it
// depends on the client or on chance, needs truncation or compression,
// or the general path panicked.
func (b *builder) build(name string, qtype uint16) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false // the query path will answer SERVFAIL and count the panic
			b.read(reading{kind: readRebuild})
		}
	}()
	b.rec = recorder{h: b.st.health, d: b.st.drains, reads: b.rec.reads[:0]}
	b.tmp = *b.st
	b.tmp.health, b.tmp.drains = &b.rec, &b.rec

	// One query for every template: respond only reads it, and a million
	// names would make a million of them (and their OPT records) garbage.
	if b.req == nil {
		b.req = new(dns.Msg)
		b.req.SetQuestion(name, qtype)
		b.req.RecursionDesired = false
		b.req.SetEdns0(b.st.udpSize, false)
	}
	req := b.req
	req.Question[0] = dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}
	m, in := respond(&b.tmp, req, netip.Addr{}, false)
	if m != nil {
		for _, rd := range b.rec.reads {
			b.read(rd)
		}
	}
	if b.rec.dependent {
		b.read(reading{kind: readRebuild})
		return false
	}
	if m == nil || m.Truncated || m.Compress || in.transfer || in.varies || m.Rcode > 0xF {
		return false
	}
	if b.ft.chancy && b.chance(m) {
		return false
	}
	if len(m.Extra) == 0 || m.Extra[len(m.Extra)-1].Header().Rrtype != dns.TypeOPT {
		return false
	}
	m.Extra = m.Extra[:len(m.Extra)-1]
	var err error
	// miekg packs into buf only when its length, not its capacity, is
	// enough.
	b.buf, err = m.PackBuffer(b.buf[:cap(b.buf)])
	if err != nil {
		return false
	}
	qlen := len(name) + 1 + 4
	if name == "." {
		qlen = 1 + 4
	}
	rest := b.buf[12+qlen:]
	if len(rest) > 0xFFFF {
		return false
	}
	var zi *zoneInfo
	if in.zone != nil {
		zi = in.zone
	}
	slot := noSlot
	if in.svc != nil {
		slot = in.svc.global(in.svc.slot(in.choice))
	}
	var hdr [12]byte
	copy(hdr[2:], b.buf[2:12]) // ID 0: each query's goes there
	b.appendTemplate(qtype, hdr, zi, rest, slot)
	return true
}

// read adds rd to the readings of the name being built.
func (b *builder) read(rd reading) { b.reads = addReading(b.reads, rd) }

// chance reports whether m holds addresses of, or names, a service whose
// answers cannot be prepacked.
func (b *builder) chance(m *dns.Msg) bool {
	svc := func(name string) bool {
		s := b.st.set.Service(name)
		return s != nil && !prepackable(s)
	}
	if len(m.Question) > 0 && svc(m.Question[0].Name) {
		return true
	}
	for _, sec := range [...][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if svc(rr.Header().Name) {
				return true
			}
			if c, ok := rr.(*dns.CNAME); ok && svc(c.Target) {
				return true
			}
		}
	}
	return false
}

// appendTemplate appends a template to the arena and returns its offset.
// zi is the zone counted under; nil counts under "none".
func (b *builder) appendTemplate(qtype uint16, hdr [12]byte, zi *zoneInfo, rest []byte, slot uint32) int {
	ft := b.ft
	zone := uint16(0)
	if zi != nil && zi.stats != nil {
		zone = b.zoneIdx[zi] // a zone outside the state's counts as none
	}
	// Sections without answer or additional records: a negative reply,
	// whose SOA is the same for many names.
	shared := len(rest) > 4 && hdr[6]|hdr[7]|hdr[10]|hdr[11] == 0
	if shared {
		zone |= sharedTail
	}
	b.reserve(tmplHdrLen + len(rest))
	off := len(ft.arena)
	a := ft.arena
	a = binary.LittleEndian.AppendUint16(a, qtype)
	a = binary.LittleEndian.AppendUint16(a, uint16(len(rest)))
	a = binary.LittleEndian.AppendUint16(a, zone)
	a = binary.LittleEndian.AppendUint16(a, cell(qtype, int(hdr[3]&0xF)))
	a = binary.LittleEndian.AppendUint32(a, slot)
	a = append(a, hdr[:]...)
	if shared {
		a = binary.LittleEndian.AppendUint32(a, ft.tail(rest))
	} else {
		a = append(a, rest...)
	}
	ft.arena = a
	return off
}

// tail returns the offset of rest in the shared tails, adding it when it
// is not there yet.
func (ft *fastTable) tail(rest []byte) uint32 {
	if off, ok := ft.tailIdx[string(rest)]; ok {
		return off
	}
	off := uint32(len(ft.tails))
	ft.tails = append(ft.tails, rest...)
	ft.tailIdx[string(rest)] = off
	return off
}

// negative appends the NXDOMAIN (rcode dns.RcodeNameError) or NODATA
// (dns.RcodeSuccess) template of zone z, the negative SOA in the
// authority section, and returns its offset plus one; 0 when it cannot
// be packed.
func (b *builder) negative(z *zones.Zone, zi *zoneInfo, rcode int) uint32 {
	var rest []byte
	ns := 0
	if zi.neg != nil {
		buf := make([]byte, dns.Len(zi.neg)+16)
		off, err := dns.PackRR(zi.neg, buf, 0, nil, false)
		if err != nil {
			return 0
		}
		rest = buf[:off]
		ns = 1
	}
	return uint32(b.appendTemplate(0, header(rcode, true, 0, ns), zi, rest, noSlot)) + 1
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

// fastHit is what the fast path answered a query with, and what to
// count.
type fastHit struct {
	q        fastQuery
	reply    []byte
	zone     *zoneStats
	cell     uint16
	slot     uint32
	counters [][]atomic.Uint64
}

// count counts the answer in shard.
func (h *fastHit) count(shard int) {
	if h.zone != nil {
		h.zone.add(shard, h.cell)
	}
	if h.slot != noSlot {
		countAnswer(h.counters, shard, h.slot)
	}
}

// fast answers pkt from st into out, when it can. name is scratch space
// of at least 256 bytes. It reads st only and allocates nothing.
func fast(st *state, pkt, out, name []byte) (fastHit, bool) {
	ft := st.fast
	if ft == nil {
		return fastHit{}, false
	}
	q, ok := parse(pkt, name)
	if !ok || isDebugName(q.qtype, q.name) {
		// A debug answer depends on the client: the general path.
		return fastHit{}, false
	}
	t, nx := ft.locate(st, q, ft.hash(qnameOf(q)))
	return ft.reply(st, q, t, nx, pkt, out)
}

// qnameOf returns q's name as a string that points into the scratch
// space parse wrote it to, which the next query overwrites: nothing may
// keep it.
func qnameOf(q fastQuery) string { return unsafe.String(unsafe.SliceData(q.name), len(q.name)) }

// locate returns the offset of the template that answers q, whose name
// hashes to h, or -1 when the general path must answer; nx is set for a
// template of any qtype, whose counter cell is the query's.
func (ft *fastTable) locate(st *state, q fastQuery, h uint64) (t int, nx bool) {
	qname := qnameOf(q)
	if rec, ok := ft.find(qname, h); ok {
		if off, ok := ft.template(rec, q.qtype); ok {
			return off, false
		}
		if off, ok := ft.absent(rec); ok && absentType(q.qtype) {
			return off, true
		}
		return -1, false
	}
	if q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR {
		return -1, false
	}
	// The name is not in the table: NXDOMAIN, REFUSED, or something the
	// general path works out (a wildcard, below a cut, an empty
	// non-terminal).
	if z := st.set.Zone(qname); z == nil {
		return ft.refused, true
	} else if lookup(z, qname, q.qtype).kind == matchNone {
		if zi := st.zones[z.Origin]; zi != nil && zi.nx != 0 {
			return int(zi.nx) - 1, true
		}
	}
	return -1, false
}

// reply writes the reply to q (in pkt) from the template at t into out.
func (ft *fastTable) reply(st *state, q fastQuery, t int, nx bool, pkt, out []byte) (fastHit, bool) {
	if t < 0 {
		return fastHit{}, false
	}
	a := ft.arena[t:]
	rest := ft.sections(t)
	size := dns.MinMsgSize
	need := 12 + q.qlen + len(rest)
	if q.edns {
		size = max(int(min(q.udpSize, st.udpSize)), dns.MinMsgSize)
		need += 11
	}
	if need > size {
		return fastHit{}, false // the general path truncates or compresses
	}
	hit := fastHit{
		q:        q,
		zone:     ft.zones[binary.LittleEndian.Uint16(a[4:])&^sharedTail],
		cell:     binary.LittleEndian.Uint16(a[6:]),
		slot:     tmplSlot(ft.arena, t),
		counters: ft.counters,
	}
	if nx {
		hit.cell = cell(q.qtype, int(a[12+3]&0xF))
	}
	out = append(out[:0], a[12:24]...)
	out[0], out[1] = pkt[0], pkt[1]
	out[2] |= pkt[2] & 0x01 // RD
	out[3] |= pkt[3] & 0x10 // CD
	out = append(out, pkt[12:12+q.qlen]...)
	out = append(out, rest...)
	if q.edns {
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
		var flags byte
		if q.do {
			flags = 0x80
		}
		out = append(out, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(st.udpSize>>8), byte(st.udpSize), 0, 0, flags, 0, 0, 0)
	}
	hit.reply = out
	return hit, true
}
