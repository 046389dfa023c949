package resolver

import (
	"net/netip"
	"slices"

	"github.com/gslbd/gslbd/zones"
)

// choice is the outcome of failover selection for one service.
type choice struct {
	// site is the index in Service.Sites of the site that serves, or -1
	// when no site was eligible and the all-down policy decided.
	site int
	// servfail is set when no site was eligible and the all-down policy
	// is to answer SERVFAIL.
	servfail bool
}

// label names the choice for metrics: the chosen site, or "all_down".
func (c choice) label(svc *zones.Service) string {
	if c.site < 0 {
		return "all_down"
	}
	return svc.Sites[c.site].Site
}

// choose runs the failover policy of svc for a query from client and
// appends the addresses to serve to buf, sorted and without duplicates.
// It is pure: it reads svc, health and drains, and changes none of them.
//
// The rules, in order:
//   - Walk svc.Sites in order. A site is eligible when [Servable] says so.
//   - The first eligible site serves its up endpoints.
//   - When no site is eligible, svc.AllDown decides: "first" serves every
//     endpoint of the first site that is not drained (the first site when
//     all are drained); "servfail" answers SERVFAIL; "all", empty and
//     anything unknown serve every endpoint of every site that is not
//     drained (of every site when all are drained): failing open is the
//     safer default for an unknown policy.
//
// health nil counts every endpoint up; drains nil drains nothing.
func choose(svc *zones.Service, health Health, drains Drains, client netip.Addr, buf []netip.Addr) (choice, []netip.Addr) {
	for i := range svc.Sites {
		site := &svc.Sites[i]
		ok, mask := servable(svc, site, health, drains, client)
		if !ok {
			continue
		}
		for j, ep := range site.Endpoints {
			if j < 64 && mask&(1<<j) != 0 || j >= 64 && isUp(health, ep.ID) {
				buf = append(buf, ep.Addr)
			}
		}
		return choice{site: i}, sortAddrs(buf)
	}

	switch svc.AllDown {
	case zones.AllDownServfail:
		return choice{site: -1, servfail: true}, buf
	case zones.AllDownFirst:
		first := -1
		for i := range svc.Sites {
			if !drained(drains, svc, &svc.Sites[i], client) {
				first = i
				break
			}
		}
		if first < 0 && len(svc.Sites) > 0 {
			first = 0
		}
		if first >= 0 {
			for _, ep := range svc.Sites[first].Endpoints {
				buf = append(buf, ep.Addr)
			}
		}
	default:
		all := true
		for i := range svc.Sites {
			if !drained(drains, svc, &svc.Sites[i], client) {
				all = false
				break
			}
		}
		for i := range svc.Sites {
			if all || !drained(drains, svc, &svc.Sites[i], client) {
				for _, ep := range svc.Sites[i].Endpoints {
					buf = append(buf, ep.Addr)
				}
			}
		}
	}
	return choice{site: -1}, sortAddrs(buf)
}

// Servable reports whether site may take traffic of svc for client: it is
// not drained for the client, and at least MinHealthy.Need(len(endpoints))
// of its endpoints are up, both address families counted together. It is
// the one statement of the rule: failover selection applies it, and so
// does anything that must predict whether a site would be chosen (the
// drain guardrail). health nil counts every endpoint up; drains nil
// drains nothing.
func Servable(svc *zones.Service, site *zones.ServiceSite, health Health, drains Drains, client netip.Addr) bool {
	ok, _ := servable(svc, site, health, drains, client)
	return ok
}

// servable is [Servable]; it also returns the verdicts of the first 64
// endpoints as a mask, so that the caller asks health once per endpoint.
func servable(svc *zones.Service, site *zones.ServiceSite, health Health, drains Drains, client netip.Addr) (bool, uint64) {
	if drained(drains, svc, site, client) {
		return false, 0
	}
	up, mask := 0, uint64(0)
	for j, ep := range site.Endpoints {
		if isUp(health, ep.ID) {
			up++
			if j < 64 {
				mask |= 1 << j
			}
		}
	}
	return up >= svc.MinHealthy.Need(len(site.Endpoints)), mask
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
