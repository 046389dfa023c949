package resolver

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// family is the address family a selection is made for. A site is
// chosen per family: an AAAA question is answered by the first site
// that can take IPv6 traffic, whatever its IPv4 endpoints say.
type family uint8

const (
	familyAll family = iota // every endpoint, both families counted together
	familyV4
	familyV6
)

// familyOf returns the family an address question asks for; familyAll
// for anything else.
func familyOf(qtype uint16) family {
	switch qtype {
	case dns.TypeA:
		return familyV4
	case dns.TypeAAAA:
		return familyV6
	}
	return familyAll
}

// holds reports whether a belongs to f.
func (f family) holds(a netip.Addr) bool {
	switch f {
	case familyV4:
		return a.Is4()
	case familyV6:
		return !a.Is4()
	}
	return true
}

// asker is what a selection depends on besides the service: the
// published health and drains, and who asks.
type asker struct {
	health Health // nil counts every endpoint up
	drains Drains // nil drains nothing
	// client is the query's source address: drains limited to some
	// clients match it.
	client netip.Addr
	// geo is the address the nearest policy looks the client's region up
	// by: the EDNS Client Subnet address when the query has one, else
	// the source address; invalid when the client asked not to be
	// located (a source prefix of 0).
	geo netip.Addr
	// geoBits is how many leading bits of geo are known: the ECS source
	// prefix length, or the whole address.
	geoBits int
	// hash is the query's own hash (its ID and the client's subnet), for
	// weighted picks and rotation: per query, without a random source.
	hash uint64
}

// choice is the outcome of failover selection for one service.
type choice struct {
	// site is the index in Service.Sites of the site that serves, or -1
	// when no site was eligible and the all-down policy decided.
	site int
	// servfail is set when no site was eligible and the all-down policy
	// is to answer SERVFAIL.
	servfail bool
	// none is set when no site has an endpoint of the family asked: the
	// answer is NODATA, and no site answered.
	none bool
	// varies is set when the answer depends on the query or the client
	// (weighted, nearest, answer shaping): it cannot be prepacked.
	varies bool
	// scope is the ECS scope prefix length the answer holds for (RFC
	// 7871): how many leading bits of the client's address decided it.
	scope int
	// degraded is set when the preferred site of the query is not whole
	// (drained, or an endpoint of the family down): TTL shaping.
	degraded bool
}

// label names the choice for metrics: the chosen site, or "all_down".
func (c choice) label(svc *zones.Service) string {
	if c.site < 0 {
		return "all_down"
	}
	return svc.Sites[c.site].Site
}

// choose runs the policy of svc for the family fam and appends the
// addresses to serve to buf, sorted and without duplicates. It is pure:
// it reads svc and what a reads, and changes none of them.
//
// The rules, in order:
//   - Only endpoints of fam count, and only sites that have one take
//     part: a site with no IPv6 endpoint is passed over for AAAA, and
//     a service with no endpoint of fam anywhere has nothing to serve
//     (NODATA), whatever the health of its other endpoints.
//   - Walk svc.Sites in order. A site is eligible when servable says so
//     for fam (the rule behind [Servable]).
//   - The first eligible site serves its up endpoints of fam.
//   - When no site is eligible, svc.AllDown decides: "first" serves every
//     endpoint of fam of the first site that is not drained (the first
//     site when all are drained); "servfail" answers SERVFAIL; "all",
//     empty and anything unknown serve every endpoint of fam of every
//     site that is not drained (of every site when all are drained):
//     failing open is the safer default for an unknown policy. Sites
//     without an endpoint of fam take no part here either.
func choose(svc *zones.Service, fam family, a *asker, buf []netip.Addr) (choice, []netip.Addr) {
	c, buf := pick(svc, fam, a, buf)
	if svc.MaxAnswers > 0 {
		c.varies = true
		if len(buf) > svc.MaxAnswers {
			buf = shape(svc, a, buf)
		}
		if svc.Shuffle == zones.ShuffleClient {
			c.scope = max(c.scope, stableBits(a))
		}
	}
	return c, buf
}

// pick is choose before answer shaping.
func pick(svc *zones.Service, fam family, a *asker, buf []netip.Addr) (choice, []netip.Addr) {
	var c choice
	order := []int(nil) // nil: svc.Sites in order
	switch svc.Policy {
	case zones.Nearest:
		c.varies = true
		if a.geo.IsValid() {
			region, scope := svc.Regions.Lookup(a.geo)
			c.scope = scope
			if region >= 0 && region < len(svc.RegionSites) {
				order = svc.RegionSites[region]
			}
		}
	case zones.Weighted:
		c.varies = true
		return weighted(svc, fam, a, c, buf)
	}
	n := len(svc.Sites)
	if order != nil {
		n = len(order)
	}
	any := false
	for k := range n {
		i := k
		if order != nil {
			i = order[k]
		}
		site := &svc.Sites[i]
		ok, total, mask := servable(svc, site, fam, a)
		if total == 0 {
			continue
		}
		if !any {
			// The preferred site: whole when it serves with every
			// endpoint of the family up.
			c.degraded = !ok || bits(mask) < total
		}
		any = true
		if !ok {
			continue
		}
		c.site = i
		return c, appendUp(buf, site, fam, a, mask)
	}
	if !any {
		c.site, c.none = -1, true
		return c, buf
	}
	return allDownPolicy(svc, fam, a, c, order, buf)
}

// appendUp appends the up endpoints of fam at site; mask holds the
// verdicts of the first 64.
func appendUp(buf []netip.Addr, site *zones.ServiceSite, fam family, a *asker, mask uint64) []netip.Addr {
	for j, ep := range site.Endpoints {
		if !fam.holds(ep.Addr) {
			continue
		}
		if j < 64 && mask&(1<<j) != 0 || j >= 64 && isUp(a.health, ep.ID) {
			buf = append(buf, ep.Addr)
		}
	}
	return sortAddrs(buf)
}

func bits(m uint64) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}

// allDownPolicy applies svc.AllDown when no site may take fam's traffic; order
// is the order of sites of the query (nil: svc.Sites).
func allDownPolicy(svc *zones.Service, fam family, a *asker, c choice, order []int, buf []netip.Addr) (choice, []netip.Addr) {
	c.site, c.degraded = -1, true
	siteAt := func(k int) *zones.ServiceSite {
		if order != nil {
			return &svc.Sites[order[k]]
		}
		return &svc.Sites[k]
	}
	switch svc.AllDown {
	case zones.AllDownServfail:
		c.servfail = true
		return c, buf
	case zones.AllDownFirst:
		first := -1
		for k := range svc.Sites {
			if s := siteAt(k); hasFamily(s, fam) && !drained(a.drains, svc, s, a.client) {
				first = k
				break
			}
		}
		for k := range svc.Sites {
			if first < 0 && hasFamily(siteAt(k), fam) {
				first = k
			}
		}
		buf = appendFamily(buf, siteAt(first), fam)
	default:
		all := true
		for i := range svc.Sites {
			if hasFamily(&svc.Sites[i], fam) && !drained(a.drains, svc, &svc.Sites[i], a.client) {
				all = false
				break
			}
		}
		for i := range svc.Sites {
			if all || !drained(a.drains, svc, &svc.Sites[i], a.client) {
				buf = appendFamily(buf, &svc.Sites[i], fam)
			}
		}
	}
	return c, sortAddrs(buf)
}

// weighted picks one site among those that may take fam's traffic, with
// the odds of its share (see share), by the query's hash.
func weighted(svc *zones.Service, fam family, a *asker, c choice, buf []netip.Addr) (choice, []netip.Addr) {
	// One pass for the facts, one for the total, one for the pick: no
	// allocation, and health is read once per endpoint into ok.
	var w weights
	var ok, has [64]bool
	var masks [64]uint64
	any := false
	for i := range svc.Sites {
		if i == 64 {
			break // zones allows at most 64 sites per weighted service
		}
		site := &svc.Sites[i]
		var n int
		ok[i], n, masks[i] = servable(svc, site, fam, a)
		if n == 0 {
			continue
		}
		has[i], any = true, true
		w.add(site, ok[i])
		if site.Weight > 0 && (!ok[i] || bits(masks[i]) < n) {
			c.degraded = true // a site meant to take a share is not whole
		}
	}
	if !any {
		c.site, c.none = -1, true
		return c, buf
	}
	total := uint64(0)
	for i := range min(len(svc.Sites), 64) {
		if ok[i] {
			total += w.share(&svc.Sites[i])
		}
	}
	if total == 0 {
		return allDownPolicy(svc, fam, a, c, nil, buf)
	}
	r := a.hash % total
	for i := range min(len(svc.Sites), 64) {
		if !ok[i] {
			continue
		}
		s := w.share(&svc.Sites[i])
		if r < s {
			c.site = i
			return c, appendUp(buf, &svc.Sites[i], fam, a, masks[i])
		}
		r -= s
	}
	return allDownPolicy(svc, fam, a, c, nil, buf) // not reached
}

// weights is what the shares of a weighted service's qualifying sites
// are computed from.
type weights struct {
	lost    uint64 // weight of the sites with the family that do not qualify
	liveW   uint64 // weight of those that do
	live    uint64 // how many do
	spare   uint64 // their room: capacity - weight, summed
	capped  bool   // capacities are set (on every site, or none)
	liveCap uint64
}

func (w *weights) add(site *zones.ServiceSite, ok bool) {
	if site.Capacity > 0 {
		w.capped = true
	}
	if !ok {
		w.lost += uint64(site.Weight)
		return
	}
	w.live++
	w.liveW += uint64(site.Weight)
	w.liveCap += uint64(site.Capacity)
	if site.Capacity > site.Weight {
		w.spare += uint64(site.Capacity - site.Weight)
	}
}

// share returns the relative share of a qualifying site:
//   - Every site qualifies: its weight.
//   - Without capacities: its weight; the lost shares go to the others in
//     proportion to their weights, which that is already.
//   - With capacities: its weight plus a part of the lost weight in
//     proportion to its room (capacity - weight); when the lost weight is
//     more than all the room, every site is at its capacity and the rest
//     is spread in proportion to capacity.
//   - When the qualifying sites all have weight 0 (standbys), equal
//     shares, or in proportion to capacity when set.
func (w *weights) share(site *zones.ServiceSite) uint64 {
	switch {
	case w.liveW == 0 && w.capped:
		return uint64(site.Capacity)
	case w.liveW == 0:
		return 1
	case !w.capped || w.lost == 0:
		return uint64(site.Weight)
	case w.lost <= w.spare:
		room := uint64(0)
		if site.Capacity > site.Weight {
			room = uint64(site.Capacity - site.Weight)
		}
		return uint64(site.Weight)*w.spare + w.lost*room
	default:
		return uint64(site.Capacity)
	}
}

// shape keeps svc.MaxAnswers of addrs (sorted, more than that many): a
// window that starts at the query's hash (rotation) or the client's
// (stable per client while addrs stay the same). It reorders addrs in
// place: they are the caller's buffer.
func shape(svc *zones.Service, a *asker, addrs []netip.Addr) []netip.Addr {
	h := a.hash
	if svc.Shuffle == zones.ShuffleClient {
		h = stableHash(a)
	}
	k := int(h % uint64(len(addrs)))
	slices.Reverse(addrs[:k])
	slices.Reverse(addrs[k:])
	slices.Reverse(addrs)
	return addrs[:svc.MaxAnswers]
}

// stableBits is how many leading bits of the client's address the
// client-stable hash takes: its /24 (IPv4) or /56 (IPv6), or fewer when
// that is all the client told (ECS).
func stableBits(a *asker) int {
	if !a.geo.IsValid() {
		return 0
	}
	b := 56
	if a.geo.Is4() {
		b = 24
	}
	return min(b, a.geoBits)
}

// stableHash hashes the client's subnet (stableBits of geo).
func stableHash(a *asker) uint64 {
	if !a.geo.IsValid() {
		return 0
	}
	p, _ := a.geo.Prefix(stableBits(a))
	b := p.Addr().As16()
	return mix(binary.BigEndian.Uint64(b[:8]) ^ mix(binary.BigEndian.Uint64(b[8:])))
}

// mix is splitmix64's finalizer: every input bit moves every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hasFamily(site *zones.ServiceSite, fam family) bool {
	for _, ep := range site.Endpoints {
		if fam.holds(ep.Addr) {
			return true
		}
	}
	return false
}

func appendFamily(buf []netip.Addr, site *zones.ServiceSite, fam family) []netip.Addr {
	for _, ep := range site.Endpoints {
		if fam.holds(ep.Addr) {
			buf = append(buf, ep.Addr)
		}
	}
	return buf
}

// Servable reports whether site may take traffic of svc for client, of
// one address family at least (a CNAME service counts its endpoints of
// both families together): it is not drained for the client, and of
// its endpoints of that family (it has some) at least
// MinHealthy.Need(how many) are up. Each family is counted on its own: a
// site whose IPv4 endpoints are all down does not take IPv4 traffic
// because its IPv6 endpoint is up. It is the one statement of the rule:
// selection applies it per family, and so does anything that must
// predict whether a site would be chosen (the drain guardrail). health
// nil counts every endpoint up; drains nil drains nothing.
func Servable(svc *zones.Service, site *zones.ServiceSite, health Health, drains Drains, client netip.Addr) bool {
	a := &asker{health: health, drains: drains, client: client}
	if svc.CNAME() {
		ok, _, _ := servable(svc, site, familyAll, a)
		return ok
	}
	ok4, _, _ := servable(svc, site, familyV4, a)
	ok6, _, _ := servable(svc, site, familyV6, a)
	return ok4 || ok6
}

// servable is [Servable] for one family. It also returns how many
// endpoints of fam the site has, and the verdicts of the first 64
// endpoints as a mask, so that the caller asks health once per endpoint.
func servable(svc *zones.Service, site *zones.ServiceSite, fam family, a *asker) (ok bool, n int, mask uint64) {
	up := 0
	for j, ep := range site.Endpoints {
		if !fam.holds(ep.Addr) {
			continue
		}
		n++
		if isUp(a.health, ep.ID) {
			up++
			if j < 64 {
				mask |= 1 << j
			}
		}
	}
	if n == 0 || drained(a.drains, svc, site, a.client) {
		return false, n, 0
	}
	return up >= svc.MinHealthy.Need(n), n, mask
}

func isUp(h Health, id string) bool { return h == nil || h.Up(id) }

func drained(d Drains, svc *zones.Service, site *zones.ServiceSite, client netip.Addr) bool {
	return d != nil && d.Drained(svc.Name, site.Site, client)
}

// sortAddrs sorts addrs in place (IPv4 before IPv6) and drops duplicates.
func sortAddrs(addrs []netip.Addr) []netip.Addr {
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs)
}
