package zones

import (
	"encoding/json"
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
	// Weighted spreads answers over every site that has enough healthy
	// endpoints, in proportion to their weights; the share of a site that
	// drops out goes to the others by weight, or by spare capacity.
	Weighted Policy = "weighted"
	// Nearest serves like Failover, with the order of sites that the
	// client's region gives (see [Regions]).
	Nearest Policy = "nearest"
)

// Shuffle says which addresses an answer limited to MaxAnswers carries.
type Shuffle string

// Shuffles.
const (
	// ShuffleRotate rotates the addresses from query to query.
	ShuffleRotate Shuffle = "rotate"
	// ShuffleClient picks by a hash of the client's subnet: the same
	// client gets the same subset until the health view changes.
	ShuffleClient Shuffle = "client"
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
	// Sites are in policy order (for Failover, the order of preference;
	// for Nearest, the order of clients outside every region).
	Sites []ServiceSite
	// MaxAnswers caps the addresses of one answer; 0: no cap. Shuffle
	// says which ones are given.
	MaxAnswers int     `json:",omitempty"`
	Shuffle    Shuffle `json:",omitempty"`
	// DegradedTTL, when HasDegradedTTL, is the TTL of answers given while
	// the preferred site of the query (see the resolver) is not whole:
	// drained, or with an endpoint of the asked family down.
	DegradedTTL    uint32 `json:",omitempty"`
	HasDegradedTTL bool   `json:",omitempty"`
	// Regions is the region table of the services file, for Nearest; nil
	// otherwise. RegionSites[r] is the order of sites, as indexes into
	// Sites, for clients of region r.
	Regions     *Regions `json:",omitempty"`
	RegionSites [][]int  `json:",omitempty"`
}

// CNAME reports whether the service answers with a CNAME to a per-site
// name ([ServiceSite.CNAME]) rather than with addresses.
func (s *Service) CNAME() bool { return len(s.Sites) > 0 && s.Sites[0].CNAME != "" }

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

// MarshalJSON keeps the form of the services hash that the float
// Fraction had, so that nodes before and after agree on it during an
// upgrade.
func (t Threshold) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count    int
		Fraction float64
	}{t.Count, float64(t.PerMillion) / 1e6})
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
	// Weight is the site's share under Weighted (default 1 there; 0:
	// only when the others are gone); 0 under the other policies. Capacity, when above 0, is the most it
	// takes, in the same units, while another site has room.
	Weight   int `json:",omitempty"`
	Capacity int `json:",omitempty"`
	// CNAME is the per-site name a CNAME service answers with
	// (canonical); "" for an address service.
	CNAME string `json:",omitempty"`
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
	// DisableReuse (reuse_connection: false) makes every probe open a new
	// connection, and a TLS handshake for HTTPS, instead of keeping one
	// connection to each endpoint between probes. Omitted from the JSON
	// when false, so that adding it did not change the hash of existing
	// files.
	DisableReuse bool `json:",omitempty"`
}

// Regions maps client addresses to regions, for the Nearest policy. It is
// immutable once built and safe for concurrent use.
type Regions struct {
	// Names are the regions, by index.
	Names []string
	// Nets are the networks of every region, sorted by address, without
	// overlaps.
	Nets []RegionNet
}

// RegionNet is one network of a region.
type RegionNet struct {
	Prefix netip.Prefix
	Region int
}

// Lookup returns the region of a (-1 for none) and the scope: how many
// leading bits of a decide it, so that every address sharing them gets
// the same region (RFC 7871's scope prefix length). a must not be an
// IPv4-mapped IPv6 address. It allocates nothing.
func (r *Regions) Lookup(a netip.Addr) (region, scope int) {
	if r == nil || !a.IsValid() {
		return -1, 0
	}
	nets := r.Nets
	// The first network that does not start before a.
	i, j := 0, len(nets)
	for i < j {
		h := int(uint(i+j) >> 1)
		if nets[h].Prefix.Addr().Compare(a) <= 0 {
			i = h + 1
		} else {
			j = h
		}
	}
	region = -1
	// With no overlaps, only the network that starts last at or before
	// a may hold it; the networks on either side bound the scope of an
	// address that none holds.
	for _, k := range [2]int{i - 1, i} {
		if k < 0 || k >= len(nets) || nets[k].Prefix.Addr().Is4() != a.Is4() {
			continue
		}
		p := nets[k].Prefix
		if p.Contains(a) {
			return nets[k].Region, p.Bits()
		}
		scope = max(scope, min(commonBits(p.Addr(), a)+1, p.Bits()))
	}
	return region, scope
}

// commonBits returns how many leading bits a and b, of one family, share.
func commonBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		d := x[i] ^ y[i]
		if d == 0 {
			n += 8
			continue
		}
		for d&0x80 == 0 {
			n++
			d <<= 1
		}
		break
	}
	if a.Is4() {
		n -= 96
	}
	return n
}
