package drain

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Services maps each canonical service name to the sites it is served
// from: all the cluster-wide guardrail needs of the service definitions.
type Services map[string][]string

// SetAside is a drain in force that the cluster-wide guardrail does not
// apply, with the services it would have left without any site for some
// clients.
type SetAside struct {
	Drain Record `json:"drain"`
	// Services are canonical names, sorted.
	Services []string `json:"services"`
}

// everyClient is the client scope of a drain without prefixes.
var everyClient = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// guard applies the cluster-wide guardrail to the drains in force, active.
// It replays them in stamp order, the order in which they were written as
// far as the cluster can tell: a drain without Force that, together with
// the drains kept before it, would leave some service of services with
// every one of its sites drained for some client is set aside; every other
// drain is kept. The outcome depends on the records alone (not on health,
// not on the order they arrived in), so every node that holds the same
// records sets aside the same drains; and of two drains written at the same
// moment on two nodes, each allowed by its node's guardrail, the later
// one is set aside.
func guard(active []Record, services Services) (kept []Record, aside []SetAside) {
	if len(services) == 0 {
		return active, nil
	}
	ordered := slices.Clone(active)
	slices.SortFunc(ordered, func(a, b Record) int {
		if c := a.Stamp.Compare(b.Stamp); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, r := range ordered {
		if r.Force {
			kept = append(kept, r)
			continue
		}
		var blocked []string
		for _, name := range names {
			sites := services[name]
			if (r.Service != "" && r.Service != name) || !slices.Contains(sites, r.Site) {
				continue
			}
			if len(strandedClients(name, sites, kept, r)) > 0 {
				blocked = append(blocked, name)
			}
		}
		if len(blocked) > 0 {
			aside = append(aside, SetAside{Drain: r, Services: blocked})
			continue
		}
		kept = append(kept, r)
	}
	return kept, aside
}

// strandedClients returns the client prefixes for which every site of
// service would be drained by recs plus cand: the intersection, over the
// sites, of the clients each site is drained for. Empty means every
// client keeps a site.
func strandedClients(service string, sites []string, recs []Record, cand Record) []netip.Prefix {
	var common []netip.Prefix
	for i, site := range sites {
		var drained []netip.Prefix
		for _, r := range append(recs[:len(recs):len(recs)], cand) {
			if r.Site != site || (r.Service != "" && r.Service != service) {
				continue
			}
			if len(r.Clients) == 0 {
				drained = everyClient
				break
			}
			drained = append(drained, r.Clients...)
		}
		if i == 0 {
			common = drained
		} else {
			common = intersect(common, drained)
		}
		if len(common) == 0 {
			return nil
		}
	}
	return common
}

// intersect returns the prefixes covering exactly the addresses that are
// in both a and b. Two prefixes overlap only when one contains the
// other, so their intersection is the longer one.
func intersect(a, b []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range a {
		for _, q := range b {
			if !p.Overlaps(q) {
				continue
			}
			if p.Bits() >= q.Bits() {
				out = append(out, p)
			} else {
				out = append(out, q)
			}
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

// GuardChange is a change in what the cluster-wide guardrail sets aside,
// for the audit trail: a drain newly set aside, or one set aside before
// that applies now (the drains that blocked it ended).
type GuardChange struct {
	// Action is ActionSetAside or ActionApply.
	Action string
	Drain  Record
	// Services are those the drain would have left without a site (for
	// ActionSetAside).
	Services []string
}

// GuardChanges returns what changed from the view prev to next in the
// drains set aside: those set aside in next but not in prev, and those
// set aside in prev that next applies. A drain is the same when its ID
// and stamp are; prev may be nil.
func GuardChanges(prev, next *View) []GuardChange {
	type version struct {
		id    string
		stamp Stamp
	}
	was := map[version]bool{}
	for _, sa := range prev.SetAside() {
		was[version{sa.Drain.ID, sa.Drain.Stamp}] = true
	}
	var out []GuardChange
	now := map[version]bool{}
	for _, sa := range next.SetAside() {
		v := version{sa.Drain.ID, sa.Drain.Stamp}
		now[v] = true
		if !was[v] {
			out = append(out, GuardChange{Action: ActionSetAside, Drain: sa.Drain, Services: sa.Services})
		}
	}
	for _, r := range next.Records() {
		if v := (version{r.ID, r.Stamp}); was[v] && !now[v] {
			out = append(out, GuardChange{Action: ActionApply, Drain: r})
		}
	}
	return out
}

// NoteGuard records changes of the cluster-wide guardrail in the audit
// trail (events with Via ViaGuardrail) and the log. It does not change
// any record and does not signal Changed.
func (s *Store) NoteGuard(now time.Time, changes []GuardChange) {
	if len(changes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		s.appendEventLocked(Event{Time: now, Action: c.Action, Via: ViaGuardrail, Drain: c.Drain, Services: c.Services})
	}
}
