package health

import (
	"fmt"
	"slices"
	"time"
)

// MergeInput is everything [Merge] decides from.
type MergeInput struct {
	// Self and Site name this node and its site.
	Self, Site string
	// ConfigHash is this node's configuration hash; reports made under
	// another hash name endpoints differently and are ignored.
	ConfigHash string
	// Local is this node's snapshot. It counts as a fresh report of Self
	// in Site; a remote report whose Origin is Self is ignored. Nil means
	// no local probes.
	Local *Snapshot
	// Remote holds other nodes' latest reports. When an origin appears
	// more than once, its highest Seq is used.
	Remote []Received
	// Sites maps every endpoint ID to the site the endpoint is in. The
	// view holds a verdict for exactly these endpoints.
	Sites map[string]string
	// Now is the time to judge freshness at.
	Now time.Time
	// Staleness is how long a remote report stays fresh after its At: a
	// report with At at or before Now-Staleness counts as absent.
	Staleness time.Duration
}

// Votes counts fresh reports with a known state for one endpoint.
type Votes struct {
	Up, Down int
}

// Total returns Up+Down.
func (v Votes) Total() int { return v.Up + v.Down }

// Verdict is the merged decision for one endpoint and why it was made.
type Verdict struct {
	Up bool
	// Reason is a short explanation for operators, for example
	// "own site 2/2 up" or "site dc1 silent; cross-check 1/2 up".
	Reason string
	// Site is the endpoint's site.
	Site string
	// Own counts the reports of nodes in the endpoint's site; Cross those
	// of nodes in other sites. Cross is counted even when Own decides.
	Own, Cross Votes
}

// rule says which rule of Merge decided a verdict.
type rule uint8

const (
	ruleOwn rule = iota
	ruleCross
	ruleNobody
	ruleUnknownEndpoint
)

// verdict is the compact form a View stores; Reason is built on demand,
// since only the status pages read it.
type verdict struct {
	up         bool
	rule       rule
	site       string
	own, cross Votes
}

// View is the merged health of every endpoint, as [Merge] computed it. It
// is immutable and safe for concurrent use. A nil *View has no verdicts,
// so every endpoint is up (fail open).
type View struct {
	verdicts   map[string]verdict
	nextExpiry time.Time
	stale      []string
	mismatched []string
}

// Up reports whether traffic may go to endpoint. An endpoint the view
// does not know is up, for the same reason an endpoint nobody has probed
// is: fail open. Up is one map lookup and meant for the query path.
func (v *View) Up(endpoint string) bool {
	if v == nil {
		return true
	}
	vd, ok := v.verdicts[endpoint]
	return !ok || vd.up
}

// Verdict returns the decision for endpoint with its reason and votes.
func (v *View) Verdict(endpoint string) Verdict {
	var vd verdict
	ok := false
	if v != nil {
		vd, ok = v.verdicts[endpoint]
	}
	if !ok {
		vd = verdict{up: true, rule: ruleUnknownEndpoint}
	}
	return vd.export()
}

// Verdicts returns a fresh map of every endpoint's verdict.
func (v *View) Verdicts() map[string]Verdict {
	if v == nil {
		return map[string]Verdict{}
	}
	out := make(map[string]Verdict, len(v.verdicts))
	for id, vd := range v.verdicts {
		out[id] = vd.export()
	}
	return out
}

func (vd verdict) export() Verdict {
	out := Verdict{Up: vd.up, Site: vd.site, Own: vd.own, Cross: vd.cross}
	switch vd.rule {
	case ruleOwn:
		out.Reason = fmt.Sprintf("own site %d/%d up", vd.own.Up, vd.own.Total())
	case ruleCross:
		out.Reason = fmt.Sprintf("site %s silent; cross-check %d/%d up", vd.site, vd.cross.Up, vd.cross.Total())
	case ruleNobody:
		out.Reason = "no known state; fail open"
	default:
		out.Reason = "unknown endpoint; fail open"
	}
	return out
}

// NextExpiry returns the earliest time at which a remote report used in
// this view goes stale, or the zero time if none was used. The caller
// merges again then, so a node that falls silent loses its vote on time
// even if nothing else changes.
func (v *View) NextExpiry() time.Time {
	if v == nil {
		return time.Time{}
	}
	return v.nextExpiry
}

// Stale returns the sorted origins whose reports were ignored: stale
// ones, and ones made under another configuration hash. The caller owns
// the slice.
func (v *View) Stale() []string {
	if v == nil {
		return nil
	}
	out := slices.Concat(v.stale, v.mismatched)
	slices.Sort(out)
	return slices.Compact(out)
}

// Mismatched returns the sorted origins whose reports were ignored for
// another configuration hash. The caller owns the slice.
func (v *View) Mismatched() []string {
	if v == nil {
		return nil
	}
	return slices.Clone(v.mismatched)
}

// voter is one fresh report that takes part in the merge.
type voter struct {
	site  string
	state func(id string) State
}

// Merge decides, for every endpoint in in.Sites, whether it is up, from
// this node's probes and the fresh reports of the other nodes. It is pure:
// the result depends on in alone. The rules are in the package
// documentation.
func Merge(in MergeInput) *View {
	v := &View{verdicts: make(map[string]verdict, len(in.Sites))}

	var voters []voter
	if in.Local != nil {
		local := in.Local
		voters = append(voters, voter{site: in.Site, state: func(id string) State {
			st, _ := local.Get(id)
			return st.Vote()
		}})
	}

	// The latest report of each other origin.
	latest := make(map[string]Received, len(in.Remote))
	for _, r := range in.Remote {
		if r.Origin == in.Self {
			continue
		}
		if cur, ok := latest[r.Origin]; ok && (cur.Seq > r.Seq || cur.Seq == r.Seq && !r.At.After(cur.At)) {
			continue
		}
		latest[r.Origin] = r
	}
	horizon := in.Now.Add(-in.Staleness)
	for origin, r := range latest {
		switch {
		case r.ConfigHash != in.ConfigHash:
			v.mismatched = append(v.mismatched, origin)
			continue
		case !r.At.After(horizon):
			v.stale = append(v.stale, origin)
			continue
		}
		if exp := r.At.Add(in.Staleness); v.nextExpiry.IsZero() || exp.Before(v.nextExpiry) {
			v.nextExpiry = exp
		}
		targets := r.Targets
		voters = append(voters, voter{site: r.Site, state: func(id string) State { return targets[id] }})
	}
	slices.Sort(v.stale)
	slices.Sort(v.mismatched)

	for id, site := range in.Sites {
		vd := verdict{site: site}
		for _, vt := range voters {
			votes := &vd.cross
			if vt.site == site {
				votes = &vd.own
			}
			switch vt.state(id) {
			case Up:
				votes.Up++
			case Down:
				votes.Down++
			}
		}
		switch {
		case vd.own.Total() > 0:
			// A tie inside a site counts as up: the site's own nodes
			// disagreeing is more likely a prober problem (one node's
			// path to the endpoint, its clock, its load) than a dead
			// endpoint, and withdrawing a serving endpoint costs more
			// than keeping one that half the probers still reach.
			vd.rule, vd.up = ruleOwn, vd.own.Up >= vd.own.Down
		case vd.cross.Total() > 0:
			// The site is silent: its nodes are dead or cut off, which
			// hints the endpoint may be too. Other sites must see it up by
			// strict majority, so a tie withdraws it.
			vd.rule, vd.up = ruleCross, vd.cross.Up > vd.cross.Down
		default:
			vd.rule, vd.up = ruleNobody, true
		}
		v.verdicts[id] = vd
	}
	return v
}
