package drain

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// View is the set of drains in force at one moment, built by [NewView]
// or [NewGuardedView] for the resolver. It is immutable and safe for
// concurrent use, and it implements resolver.Drains. A nil *View drains
// nothing.
type View struct {
	// bySite holds the drains applied per site, in ID order.
	bySite map[string][]Record
	// records are the drains applied, by site, service, ID.
	records []Record
	// setAside are the drains in force the guardrail does not apply, by
	// site, service, ID.
	setAside []SetAside
}

// NewView returns the drains among recs that are in force at now, every
// one of them applied. It does not keep recs.
func NewView(recs []Record, now time.Time) *View { return NewGuardedView(recs, now, nil) }

// NewGuardedView returns the drains among recs that are in force at now,
// with the cluster-wide guardrail applied for services: a drain without
// Force that would leave a service with every site drained for some
// clients, on top of the drains written before it (by stamp), is set
// aside rather than applied. Every node holding the same records and
// services sets aside the same drains. It does not keep recs or services.
func NewGuardedView(recs []Record, now time.Time, services Services) *View {
	v := &View{bySite: make(map[string][]Record)}
	var active []Record
	for _, r := range recs {
		if r.Active(now) {
			active = append(active, r)
		}
	}
	v.records, v.setAside = guard(active, services)
	slices.SortFunc(v.records, compareRecords)
	slices.SortFunc(v.setAside, func(a, b SetAside) int { return compareRecords(a.Drain, b.Drain) })
	for _, r := range v.records {
		v.bySite[r.Site] = append(v.bySite[r.Site], r)
	}
	return v
}

// Drained reports whether site is drained for service (a canonical name)
// for a query from client. It is meant for the query path: a map lookup
// and a short scan, no allocation.
func (v *View) Drained(service, site string, client netip.Addr) bool {
	if v == nil {
		return false
	}
	client = client.Unmap()
	rs := v.bySite[site]
	for i := range rs {
		if rs[i].covers(service, client) {
			return true
		}
	}
	return false
}

// DrainedBy returns the IDs of the drains that make [View.Drained] true
// for the same arguments, in ID order; nil when none does. It is the
// explanation of Drained (for debug answers and status pages), not meant
// for the query path.
func (v *View) DrainedBy(service, site string, client netip.Addr) []string {
	if v == nil {
		return nil
	}
	client = client.Unmap()
	var ids []string
	for _, r := range v.bySite[site] {
		if r.covers(service, client) {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// covers reports whether r, a drain in force, drains its site for
// service and client: the one statement of Drained's rule.
func (r *Record) covers(service string, client netip.Addr) bool {
	if r.Service != "" && r.Service != service {
		return false
	}
	if len(r.Clients) == 0 {
		return true
	}
	for _, p := range r.Clients {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// ClientScoped reports whether a drain in force for site and service (a
// canonical name) is limited to some clients, so that Drained may answer
// differently for different clients. The resolver prepacks the answers
// of sites for which it is false.
func (v *View) ClientScoped(service, site string) bool {
	if v == nil {
		return false
	}
	for _, r := range v.bySite[site] {
		if (r.Service == "" || r.Service == service) && len(r.Clients) > 0 {
			return true
		}
	}
	return false
}

// Affecting returns the drains in force for site and service (a
// canonical name), including those limited to some clients. The caller
// owns the slice.
func (v *View) Affecting(service, site string) []Record {
	if v == nil {
		return nil
	}
	var out []Record
	for _, r := range v.bySite[site] {
		if r.Service == "" || r.Service == service {
			out = append(out, r)
		}
	}
	return out
}

// Records returns every drain applied, sorted by site, service and ID.
// The caller owns the slice.
func (v *View) Records() []Record {
	if v == nil {
		return nil
	}
	return slices.Clone(v.records)
}

// SetAside returns the drains in force that the guardrail does not
// apply, sorted by site, service and ID. The caller owns the slice.
func (v *View) SetAside() []SetAside {
	if v == nil {
		return nil
	}
	return slices.Clone(v.setAside)
}

// Len returns the number of drains applied.
func (v *View) Len() int {
	if v == nil {
		return 0
	}
	return len(v.records)
}

func compareRecords(a, b Record) int {
	if c := strings.Compare(a.Site, b.Site); c != 0 {
		return c
	}
	if c := strings.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}
