package zones

import (
	"net/netip"
	"time"
)

// Policy says how a service chooses among its sites.
type Policy string

// Policies.
const (
	// Failover serves the first site, in the configured order, that has
	// enough healthy endpoints.
	Failover Policy = "failover"
)

// AllDown says what a service answers when no site has enough healthy
// endpoints.
type AllDown string

// All-down policies.
const (
	// AllDownAll serves every endpoint of every site (fail open). Default.
	AllDownAll AllDown = "all"
	// AllDownFirst serves every endpoint of the first site in order.
	AllDownFirst AllDown = "first"
	// AllDownServfail answers SERVFAIL.
	AllDownServfail AllDown = "servfail"
)

// Service is an owner name answered from health-checked endpoints.
type Service struct {
	Name       string // canonical owner name
	Zone       string // origin of the zone holding Name; set by NewSet
	Policy     Policy
	TTL        uint32
	MinHealthy Threshold
	AllDown    AllDown
	// Sites are in policy order (for Failover, the order of preference).
	Sites []ServiceSite
}

// Threshold is the minimum of healthy endpoints for a site to take
// traffic: a count, or a share of the site's endpoints when PerMillion >
// 0.
type Threshold struct {
	Count int
	// PerMillion is the share in millionths (0 < PerMillion <= 1e6):
	// "7%" is 70000, "12.5%" 125000. Integers, so that 7% of 100 is 7,
	// where float arithmetic made it 7.000000000000001 and so 8.
	PerMillion int
}

// Need returns how many of total endpoints must be healthy: the count,
// or the share of total rounded up. It is never less than 1 and never
// more than total (when total is at least 1): sites are judged per
// address family, and a count of 2 must not keep a site whose only IPv6
// endpoint is up from ever taking IPv6 traffic.
func (t Threshold) Need(total int) int {
	n := t.Count
	if t.PerMillion > 0 {
		n = int((int64(t.PerMillion)*int64(total) + 999_999) / 1_000_000)
	}
	n = min(n, total)
	if n < 1 {
		n = 1
	}
	return n
}

// ServiceSite is one site's share of a service.
type ServiceSite struct {
	Site      string
	Endpoints []Endpoint
	Check     Check
}

// Endpoint is one address of a service at a site.
type Endpoint struct {
	// ID names the endpoint the same way on every node: "service/site/addr"
	// with the service name without its trailing dot.
	ID   string
	Addr netip.Addr
}

// CheckKind is the kind of health probe.
type CheckKind string

// Check kinds.
const (
	CheckHTTP  CheckKind = "http"
	CheckHTTPS CheckKind = "https"
	CheckTCP   CheckKind = "tcp"
)

// Check declares how endpoints are probed. It is plain data: cmd turns it
// into health probes.
type Check struct {
	Kind     CheckKind
	Port     uint16
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive successes to go up
	Fall     int // consecutive failures to go down

	// HTTP and HTTPS only.
	Method       string
	Path         string
	Host         string
	ExpectStatus []int  // empty: 200-399
	BodyContains string // empty: not checked
	// InsecureSkipVerify turns TLS certificate verification off (HTTPS).
	InsecureSkipVerify bool
}
