package resolver

import (
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
	any := false
	for i := range svc.Sites {
		site := &svc.Sites[i]
		ok, n, mask := servable(svc, site, fam, a)
		if n > 0 {
			any = true
		}
		if !ok {
			continue
		}
		for j, ep := range site.Endpoints {
			if !fam.holds(ep.Addr) {
				continue
			}
			if j < 64 && mask&(1<<j) != 0 || j >= 64 && isUp(a.health, ep.ID) {
				buf = append(buf, ep.Addr)
			}
		}
		return choice{site: i}, sortAddrs(buf)
	}
	if !any {
		return choice{site: -1, none: true}, buf
	}

	switch svc.AllDown {
	case zones.AllDownServfail:
		return choice{site: -1, servfail: true}, buf
	case zones.AllDownFirst:
		first := -1
		for i := range svc.Sites {
			if hasFamily(&svc.Sites[i], fam) && !drained(a.drains, svc, &svc.Sites[i], a.client) {
				first = i
				break
			}
		}
		for i := range svc.Sites {
			if first < 0 && hasFamily(&svc.Sites[i], fam) {
				first = i
			}
		}
		buf = appendFamily(buf, &svc.Sites[first], fam)
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
	return choice{site: -1}, sortAddrs(buf)
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
// one address family at least: it is not drained for the client, and of
// its endpoints of that family (it has some) at least
// MinHealthy.Need(how many) are up. Each family is counted on its own: a
// site whose IPv4 endpoints are all down does not take IPv4 traffic
// because its IPv6 endpoint is up. It is the one statement of the rule:
// selection applies it per family, and so does anything that must
// predict whether a site would be chosen (the drain guardrail). health
// nil counts every endpoint up; drains nil drains nothing.
func Servable(svc *zones.Service, site *zones.ServiceSite, health Health, drains Drains, client netip.Addr) bool {
	a := &asker{health: health, drains: drains, client: client}
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
