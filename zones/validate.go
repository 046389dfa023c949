package zones

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// zoneData is one zone between parsing and building: its records with
// their positions, indexed for validation and for the services checks.
type zoneData struct {
	cfg     ZoneConfig
	origin  string
	file    string
	failed  bool // the file did not parse: nothing below is filled in
	records []record

	// Filled in by check.
	kept  []record // records that passed the per-record checks, duplicates removed
	names map[string]typed[record]
	cuts  map[string]bool // delegation points: non-apex owners of NS records
}

// rrs returns the records kept by check, in file order.
func (zd *zoneData) rrs() []dns.RR {
	out := make([]dns.RR, len(zd.kept))
	for i, r := range zd.kept {
		out[i] = r.rr
	}
	return out
}

// check validates the zone's data and returns every problem. origins are
// all the zones being loaded, to find data hidden by a served child zone.
func (zd *zoneData) check(origins []string) []error {
	var errs []error
	bad := func(r record, format string, args ...any) {
		errs = append(errs, errorAt(r.file, r.line, format, args...))
	}
	zd.names = make(map[string]typed[record], len(zd.records)) // at most one name per record
	zd.kept = make([]record, 0, len(zd.records))
	zd.cuts = make(map[string]bool)
	buf := make([]byte, dns.MaxMsgSize)

	// Per record: place, class, type and encoding. A record that fails
	// here stays out of the index so it causes no second message.
	// bigSets indexes, by data, the RRsets grown past dupScan records,
	// where a linear search for duplicates would get slow.
	const dupScan = 32
	bigSets := make(map[string][]record)
	empties := make(map[uint16]dns.RR) // for noRdata: one empty RR per type
	for _, r := range zd.records {
		h := r.rr.Header()
		h.Name = dns.CanonicalName(h.Name)
		typ := dns.Type(h.Rrtype).String()
		switch {
		case !inZone(zd.origin, h.Name):
			bad(r, "%s record for %s is outside zone %s", typ, h.Name, zd.origin)
			continue
		case h.Class != dns.ClassINET:
			bad(r, "%s record for %s has class %s; only IN is supported", typ, h.Name, dns.Class(h.Class))
			continue
		case metaType(h.Rrtype):
			bad(r, "%s record for %s: type %s cannot be zone data", typ, h.Name, typ)
			continue
		case noRdata(r.rr, empties):
			bad(r, "%s record for %s has no data", typ, h.Name)
			continue
		}
		if _, err := dns.PackRR(r.rr, buf, 0, nil, false); err != nil {
			bad(r, "%s record for %s cannot be encoded: %v", typ, h.Name, err)
			continue
		}
		// Identical records make one (RFC 2181 §5); the first is kept.
		types := zd.names[h.Name]
		set := types.get(h.Rrtype)
		isDup := func(o record) bool { return dns.IsDuplicate(o.rr, r.rr) }
		if len(set) < dupScan {
			if slices.ContainsFunc(set, isDup) {
				continue
			}
		} else {
			key := h.Name + " " + strings.ToLower(rdata(r.rr))
			if slices.ContainsFunc(bigSets[key], isDup) {
				continue
			}
			bigSets[key] = append(bigSets[key], r)
		}
		zd.kept = append(zd.kept, r)
		types.add(h.Rrtype, r)
		zd.names[h.Name] = types
		if len(set)+1 == dupScan { // the set just grew big: index it
			for _, o := range types.get(h.Rrtype) {
				k := h.Name + " " + strings.ToLower(rdata(o.rr))
				bigSets[k] = append(bigSets[k], o)
			}
		}
		if h.Rrtype == dns.TypeNS && h.Name != zd.origin {
			zd.cuts[h.Name] = true
		}
	}

	// The apex: one SOA, some NS, no CNAME.
	apex := zd.names[zd.origin]
	for i, r := range apex.get(dns.TypeSOA) {
		if i > 0 {
			bad(r, "more than one SOA record at the zone apex %s", zd.origin)
		}
	}
	soa := apex.get(dns.TypeSOA)
	switch {
	case len(soa) == 0:
		errs = append(errs, errorAt(zd.file, 1, "no SOA record at the zone apex %s", zd.origin))
	case len(apex.get(dns.TypeNS)) == 0:
		bad(soa[0], "no NS records at the zone apex %s", zd.origin)
	}

	// Name servers with a target inside the zone need its addresses here:
	// glue below a delegation, authoritative data elsewhere.
	glue := make(map[string]bool)
	names := sortedKeys(zd.names)
	for _, name := range names {
		for _, r := range zd.names[name].get(dns.TypeNS) {
			target := dns.CanonicalName(r.rr.(*dns.NS).Ns)
			if !inZone(zd.origin, target) {
				continue
			}
			glue[target] = true
			if t := zd.names[target]; len(t.get(dns.TypeA)) == 0 && len(t.get(dns.TypeAAAA)) == 0 {
				bad(r, "missing glue: name server %s has no A or AAAA record in the zone", target)
			}
		}
	}

	for _, name := range names {
		types := zd.names[name]
		if name != zd.origin {
			// Every SOA below the apex, whatever else is wrong there.
			for _, r := range types.get(dns.TypeSOA) {
				bad(r, "SOA record for %s is not at the zone apex %s", name, zd.origin)
			}
		}
		if cut := zd.cutAbove(name); cut != "" {
			// Below a delegation only glue; at it also NS, DS and the
			// DNSSEC records that prove them.
			for _, t := range types.types() {
				if t == dns.TypeSOA || (t == dns.TypeA || t == dns.TypeAAAA) && glue[name] {
					continue
				}
				if name == cut && (t == dns.TypeNS || t == dns.TypeDS || t == dns.TypeNSEC || t == dns.TypeRRSIG) {
					continue
				}
				for _, r := range types.get(t) {
					bad(r, "%s record for %s is occluded by the delegation at %s", dns.Type(t), name, cut)
				}
			}
			continue
		}
		if child := childZone(zd.origin, name, origins); child != "" {
			for _, t := range types.types() {
				if t == dns.TypeSOA {
					continue
				}
				for _, r := range types.get(t) {
					bad(r, "%s record for %s is hidden by zone %s, which is also served", dns.Type(t), name, child)
				}
			}
			continue
		}
		cnames := types.get(dns.TypeCNAME)
		if len(cnames) == 0 {
			continue
		}
		if name == zd.origin {
			bad(cnames[0], "CNAME record at the zone apex %s", name)
			continue
		}
		for _, r := range cnames[1:] {
			bad(r, "more than one CNAME record for %s", name)
		}
		var others []string
		for _, t := range types.types() {
			if t != dns.TypeCNAME && t != dns.TypeRRSIG && t != dns.TypeNSEC {
				others = append(others, dns.Type(t).String())
			}
		}
		if len(others) > 0 {
			bad(cnames[0], "CNAME record for %s beside other data (%s)", name, strings.Join(others, ", "))
		}
	}
	return errs
}

// cutAbove returns the highest delegation point at or above name, or "".
func (zd *zoneData) cutAbove(name string) string {
	cut := ""
	for n := name; n != zd.origin && n != ""; n = parent(n) {
		if zd.cuts[n] {
			cut = n
		}
	}
	return cut
}

// childZone returns the origin of another served zone that holds name,
// when that zone is below origin, or "".
func childZone(origin, name string, origins []string) string {
	best := ""
	for _, o := range origins {
		if o != origin && len(o) > len(best) && inZone(origin, o) && inZone(o, name) {
			best = o
		}
	}
	return best
}

// metaType reports QTYPEs and meta types (RFC 6895 §3.1), which are never
// zone data.
func metaType(t uint16) bool {
	return t == dns.TypeNone || t == dns.TypeOPT || (t >= 128 && t <= 255) || t == dns.TypeReserved
}

// noRdata reports an RR without any data, which the parser returns for a
// last line like "www A" (a dynamic update RR). empties keeps one empty RR
// of each type to compare with, so that a million records do not make a
// million empty ones.
func noRdata(rr dns.RR, empties map[uint16]dns.RR) bool {
	// The common types first, without reflection: the same test as the
	// comparison below (a field the parser never set).
	switch rr := rr.(type) {
	case *dns.RFC3597:
		return false // "\# 0" is valid empty data
	case *dns.A:
		return rr.A == nil
	case *dns.AAAA:
		return rr.AAAA == nil
	case *dns.CNAME:
		return rr.Target == ""
	case *dns.NS:
		return rr.Ns == ""
	case *dns.PTR:
		return rr.Ptr == ""
	case *dns.TXT:
		return rr.Txt == nil
	}
	t := rr.Header().Rrtype
	empty, ok := empties[t]
	if !ok {
		mk, known := dns.TypeToRR[t]
		if !known {
			return false
		}
		empty = mk()
		empties[t] = empty
	}
	*empty.Header() = *rr.Header()
	return reflect.DeepEqual(empty, rr)
}

// rdata is the presentation form of an RR's data.
func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

func sortedKeys[K interface{ ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// lookupZone returns the loaded zone with the longest origin holding name.
func lookupZone(zds []*zoneData, name string) *zoneData {
	var best *zoneData
	for _, zd := range zds {
		if inZone(zd.origin, name) && (best == nil || len(zd.origin) > len(best.origin)) {
			best = zd
		}
	}
	return best
}

// first returns the first record of type t at name, if any.
func (zd *zoneData) first(name string, t uint16) (record, bool) {
	rs := zd.names[name].get(t)
	if len(rs) == 0 {
		return record{}, false
	}
	return rs[0], true
}

func (r record) pos() string { return fmt.Sprintf("%s:%d", r.file, r.line) }
