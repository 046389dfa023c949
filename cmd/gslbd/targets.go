package main

import (
	"net/netip"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/zones"
)

// healthTargets turns the service definitions into probe targets. Every
// node probes every endpoint: its own site's, and the other sites' as
// cross-checks for when a site falls silent.
func healthTargets(set *zones.Set) []health.Target {
	var out []health.Target
	for _, svc := range set.Services() {
		for _, site := range svc.Sites {
			probe := newProbe(site.Check)
			for _, ep := range site.Endpoints {
				out = append(out, health.Target{
					ID:       ep.ID,
					Addr:     netip.AddrPortFrom(ep.Addr, site.Check.Port),
					Kind:     string(site.Check.Kind),
					Probe:    probe,
					Interval: site.Check.Interval,
					Timeout:  site.Check.Timeout,
					Rise:     site.Check.Rise,
					Fall:     site.Check.Fall,
				})
			}
		}
	}
	return out
}

// endpointSites maps every endpoint ID to its site, for the verdict.
func endpointSites(set *zones.Set) map[string]string {
	m := make(map[string]string)
	for _, svc := range set.Services() {
		for _, site := range svc.Sites {
			for _, ep := range site.Endpoints {
				m[ep.ID] = site.Site
			}
		}
	}
	return m
}

// drainServices returns, for the cluster-wide drain guardrail, the sites
// of every service of set.
func drainServices(set *zones.Set) drain.Services {
	m := make(drain.Services)
	for _, svc := range set.Services() {
		for _, site := range svc.Sites {
			m[svc.Name] = append(m[svc.Name], site.Site)
		}
	}
	return m
}

func newProbe(c zones.Check) health.Probe {
	switch c.Kind {
	case zones.CheckTCP:
		return health.NewTCPProbe()
	default:
		return health.NewHTTPProbe(health.HTTPCheck{
			Scheme:             string(c.Kind),
			Method:             c.Method,
			Path:               c.Path,
			Host:               c.Host,
			ExpectStatus:       c.ExpectStatus,
			BodyContains:       c.BodyContains,
			InsecureSkipVerify: c.InsecureSkipVerify,
		})
	}
}
