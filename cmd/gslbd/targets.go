package main

import (
	"fmt"
	"net/netip"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/zones"
)

// healthTargets turns the service definitions into probe targets for a
// node in site self. Every node probes every endpoint: its own site's,
// and the other sites' (Remote) as cross-checks for when a site falls
// silent. Each service's endpoint is a target of its own (its ID is
// service/site/address), but targets with the same address and check
// share one probe (the Key): an endpoint behind several services is
// probed once per interval.
func healthTargets(set *zones.Set, self string) []health.Target {
	n := 0
	for _, svc := range set.Services() {
		for _, site := range svc.Sites {
			n += len(site.Endpoints)
		}
	}
	out := make([]health.Target, 0, n)
	probes := make(map[string]health.Probe)
	for _, svc := range set.Services() {
		for _, site := range svc.Sites {
			key := probeKey(site.Check)
			probe, ok := probes[key]
			if !ok {
				probe = newProbe(site.Check)
				probes[key] = probe
			}
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
					Key:      key,
					Remote:   site.Site != self,
				})
			}
		}
	}
	return out
}

// probeKey names everything that makes a check's probe behave
// differently, apart from the port, kind and timing that health.Target
// carries itself: two targets at the same address with the same key get
// the same answer from one probe.
func probeKey(c zones.Check) string {
	return fmt.Sprintf("%s %q %q %q %v %q %t %t", c.Kind, c.Method, c.Path, c.Host, c.ExpectStatus, c.BodyContains, c.InsecureSkipVerify, c.DisableReuse)
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
			DisableReuse:       c.DisableReuse,
		})
	}
}
