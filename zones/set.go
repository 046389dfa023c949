package zones

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"

	"github.com/miekg/dns"
)

// Set is the immutable collection of zones and services a node serves.
type Set struct {
	zones    map[string]*Zone // by canonical origin
	origins  []string         // sorted, for stable iteration
	services map[string]*Service
	svcNames []string
	hash     string
}

// NewSet assembles zones and services into a Set. It indexes, it does not
// validate: [Load] validates before calling it. Every service must belong to
// one of the zones; a service whose zone is missing is ignored.
func NewSet(zs []*Zone, services []*Service, hash string) *Set {
	s := &Set{
		zones:    make(map[string]*Zone, len(zs)),
		services: make(map[string]*Service, len(services)),
		hash:     hash,
	}
	for _, z := range zs {
		s.zones[z.Origin] = z
		s.origins = append(s.origins, z.Origin)
	}
	sort.Strings(s.origins)
	for _, svc := range services {
		z := s.Zone(svc.Name)
		if z == nil {
			continue
		}
		svc.Zone = z.Origin
		s.services[svc.Name] = svc
		s.svcNames = append(s.svcNames, svc.Name)
		z.addService(svc)
	}
	sort.Strings(s.svcNames)
	return s
}

// Zone returns the zone with the longest origin that contains qname, or
// nil when qname is in none of them. qname must be canonical.
func (s *Set) Zone(qname string) *Zone {
	if s == nil {
		return nil
	}
	for name := qname; name != ""; name = parent(name) {
		if z, ok := s.zones[name]; ok {
			return z
		}
	}
	return nil
}

// Zones returns the zones sorted by origin.
func (s *Set) Zones() []*Zone {
	out := make([]*Zone, 0, len(s.origins))
	for _, o := range s.origins {
		out = append(out, s.zones[o])
	}
	return out
}

// Service returns the service whose owner name is name, or nil.
func (s *Set) Service(name string) *Service { return s.services[name] }

// Services returns the services sorted by owner name.
func (s *Set) Services() []*Service {
	out := make([]*Service, 0, len(s.svcNames))
	for _, n := range s.svcNames {
		out = append(out, s.services[n])
	}
	return out
}

// Hash identifies the service definitions. Nodes whose hashes differ name
// their endpoints differently and must not merge each other's health.
func (s *Set) Hash() string { return s.hash }

// Zone is one authoritative zone. It is immutable once built.
type Zone struct {
	Origin string // canonical
	File   string // where it was loaded from, for messages
	SOA    *dns.SOA
	// AllowTransfer lists the client prefixes allowed to AXFR/IXFR the zone.
	// Empty means transfers are refused.
	AllowTransfer []netip.Prefix

	nodes   map[string]*Node // owner -> data; includes empty non-terminals
	records []dns.RR         // every RR in file order with the SOA first
}

// Node is the data at one owner name. A Node with no RRsets and no service
// is an empty non-terminal: the name exists but owns nothing.
type Node struct {
	Name string
	// rrs are the node's RRs sorted by type, each RRset in file order:
	// one slice, because most names of a large zone own one RR, and a
	// slice per type would be two more allocations per name.
	rrs     []dns.RR
	service *Service
}

// NewZone indexes records for origin. The SOA, when present, is taken from
// the records. Names are canonicalised; records outside the zone are kept
// out of the index (validation reports them).
func NewZone(origin, file string, records []dns.RR) *Zone {
	origin = dns.CanonicalName(origin)
	z := &Zone{Origin: origin, File: file, nodes: make(map[string]*Node, len(records)), records: make([]dns.RR, 0, len(records))}
	z.nodes[origin] = &Node{Name: origin}
	for _, rr := range records {
		h := rr.Header()
		h.Name = dns.CanonicalName(h.Name)
		if !inZone(origin, h.Name) {
			continue
		}
		if soa, ok := rr.(*dns.SOA); ok && h.Name == origin && z.SOA == nil {
			z.SOA = soa
		}
		n := z.node(h.Name)
		n.rrs = append(n.rrs, rr)
	}
	for _, n := range z.nodes {
		if len(n.rrs) > 1 {
			slices.SortStableFunc(n.rrs, func(a, b dns.RR) int {
				return cmp.Compare(a.Header().Rrtype, b.Header().Rrtype)
			})
		}
	}
	if z.SOA != nil {
		z.records = append(z.records, z.SOA)
	}
	for _, rr := range records {
		if rr == dns.RR(z.SOA) || !inZone(origin, rr.Header().Name) {
			continue
		}
		z.records = append(z.records, rr)
	}
	return z
}

// node returns the node for name, creating it and every empty non-terminal
// between it and the apex.
func (z *Zone) node(name string) *Node {
	n, ok := z.nodes[name]
	if ok {
		return n
	}
	n = &Node{Name: name}
	z.nodes[name] = n
	for p := parent(name); p != "" && inZone(z.Origin, p); p = parent(p) {
		if _, ok := z.nodes[p]; ok {
			break
		}
		z.nodes[p] = &Node{Name: p}
	}
	return n
}

func (z *Zone) addService(svc *Service) { z.node(svc.Name).service = svc }

// Lookup returns the node at name and whether the name exists in the zone,
// as data owner, service, or empty non-terminal. name must be canonical.
func (z *Zone) Lookup(name string) (*Node, bool) {
	n, ok := z.nodes[name]
	return n, ok
}

// Records returns every RR of the zone, SOA first, in file order. The
// caller must not modify them.
func (z *Zone) Records() []dns.RR { return z.records }

// Names returns every owner name in the zone, empty non-terminals
// included, in lexical (not canonical DNS) order.
func (z *Zone) Names() []string {
	out := make([]string, 0, len(z.nodes))
	for n := range z.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Nodes calls yield for every node of the zone, empty non-terminals
// included, in no particular order, until yield returns false. It is
// cheaper than [Zone.Names] on large zones: nothing is sorted or copied.
func (z *Zone) Nodes(yield func(*Node) bool) {
	for _, n := range z.nodes {
		if !yield(n) {
			return
		}
	}
}

// RRset returns the RRs of type t at this node. The caller must not modify
// them: copy before changing a header (dns.Copy).
func (n *Node) RRset(t uint16) []dns.RR {
	if n == nil {
		return nil
	}
	rrs := n.rrs
	// The first RR of type t or above, then the end of the run.
	i := 0
	if len(rrs) > 8 {
		i, _ = slices.BinarySearchFunc(rrs, t, func(rr dns.RR, t uint16) int { return cmp.Compare(rr.Header().Rrtype, t) })
	} else {
		for i < len(rrs) && rrs[i].Header().Rrtype < t {
			i++
		}
	}
	j := i
	for j < len(rrs) && rrs[j].Header().Rrtype == t {
		j++
	}
	if i == j {
		return nil
	}
	return rrs[i:j:j] // capped: an append by the caller copies
}

// Types returns the RR types present at the node, sorted.
func (n *Node) Types() []uint16 {
	if n == nil || len(n.rrs) == 0 {
		return nil
	}
	var out []uint16
	for _, rr := range n.rrs {
		if t := rr.Header().Rrtype; len(out) == 0 || out[len(out)-1] != t {
			out = append(out, t)
		}
	}
	return out
}

// Empty reports whether the node owns no data and no service: an empty
// non-terminal.
func (n *Node) Empty() bool { return n == nil || (len(n.rrs) == 0 && n.service == nil) }

// Service returns the service answered at this node, or nil.
func (n *Node) Service() *Service {
	if n == nil {
		return nil
	}
	return n.service
}

// parent returns the name with its first label removed, "" for the root.
// Escaped dots (a\.b) do not end a label.
func parent(name string) string {
	if name == "." || name == "" {
		return ""
	}
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}
