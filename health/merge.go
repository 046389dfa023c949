package health

import (
	"fmt"
	"maps"
	"slices"
	"strings"
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
	// Quiet, when positive and shorter than Staleness, is how long a
	// remote report may go without a heartbeat before its site counts as
	// quiet: an endpoint whose own site's votes all come from quiet
	// reports is withdrawn as soon as the other sites' cross-check would
	// withdraw it once those reports went stale (rule 4), rather than
	// Staleness after their last heartbeat. A site that dies whole is
	// then out once its heartbeats have been missing for Quiet and the
	// other sites' probes have seen its endpoints fail, whichever comes
	// later. Zero disables it.
	Quiet time.Duration
}

// Votes counts fresh reports with a known state for one endpoint.
type Votes struct {
	Up, Down int
}

// Total returns Up+Down.
func (v Votes) Total() int { return v.Up + v.Down }

// SiteVotes counts sites by what the majority of their nodes' votes on an
// endpoint says: Up, Down, or Split (as many up as down).
type SiteVotes struct {
	Up, Down, Split int
}

// Total returns the number of sites that vote.
func (s SiteVotes) Total() int { return s.Up + s.Down + s.Split }

// Verdict is the merged decision for one endpoint and why it was made.
type Verdict struct {
	Up bool
	// Reason is a short explanation for operators, for example
	// "own site 2/2 up" or "site dc1 silent; cross-check 1/2 up".
	Reason string
	// Site is the endpoint's site.
	Site string
	// Own counts the votes of nodes in the endpoint's site; Cross those
	// of nodes in other sites, and CrossSites the other sites that vote,
	// by their majority. Cross is counted even when Own decides.
	Own, Cross Votes
	CrossSites SiteVotes
}

// rule says which rule of Merge decided a verdict.
type rule uint8

const (
	ruleOwn rule = iota
	ruleOverruled
	ruleTie
	ruleCross
	ruleQuiet
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
	crossSites SiteVotes
	// quiet is MergeInput.Quiet, for ruleQuiet's reason.
	quiet time.Duration
}

// View is the merged health of every endpoint, as [Merge] computed it. It
// is immutable and safe for concurrent use. A nil *View has no verdicts,
// so every endpoint is up (fail open).
type View struct {
	verdicts   map[string]verdict
	nextExpiry time.Time
	stale      []string
	mismatched []string
	suspect    []string
	contested  []string
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
	out := Verdict{Up: vd.up, Site: vd.site, Own: vd.own, Cross: vd.cross, CrossSites: vd.crossSites}
	switch vd.rule {
	case ruleOwn:
		out.Reason = fmt.Sprintf("own site %d/%d up", vd.own.Up, vd.own.Total())
	case ruleOverruled:
		out.Reason = fmt.Sprintf("own site %d/%d up, but every other site sees it up (%d/%d sites)",
			vd.own.Up, vd.own.Total(), vd.crossSites.Up, vd.crossSites.Total())
	case ruleTie:
		out.Reason = fmt.Sprintf("own site %d/%d up, tie broken by cross-check %d/%d up",
			vd.own.Up, vd.own.Total(), vd.cross.Up, vd.cross.Total())
	case ruleCross:
		out.Reason = fmt.Sprintf("site %s silent; cross-check %d/%d up", vd.site, vd.cross.Up, vd.cross.Total())
	case ruleQuiet:
		out.Reason = fmt.Sprintf("site %s quiet (no heartbeat for %s; own site %d/%d up); cross-check %d/%d up",
			vd.site, vd.quiet, vd.own.Up, vd.own.Total(), vd.cross.Up, vd.cross.Total())
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

// Contested returns the sorted endpoints that this node's own probes see
// Up while another node's fresh report, not set aside as suspect, says
// Down: the endpoints to probe again now (see [Checker.Expedite]). The
// caller owns the slice.
func (v *View) Contested() []string {
	if v == nil {
		return nil
	}
	return slices.Clone(v.contested)
}

// Suspect returns the sorted nodes whose views were set aside because
// none of their probes succeeds while other nodes see some of the same
// endpoints up (see the package documentation); this node's own name is
// among them when its own view is suspect. The caller owns the slice.
func (v *View) Suspect() []string {
	if v == nil {
		return nil
	}
	return slices.Clone(v.suspect)
}

// voter is one fresh report that takes part in the merge.
type voter struct {
	origin string
	site   string
	// at is the report's At; zero for this node's own snapshot, which is
	// never quiet.
	at    time.Time
	state func(id string) State
	// failing reports whether the voter's probes of the endpoint fail: it
	// votes Down, or (for this node) it cannot probe the endpoint.
	failing func(id string) bool
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
		voters = append(voters, voter{
			origin: in.Self, site: in.Site,
			state: func(id string) State {
				st, _ := local.Get(id)
				return st.Vote()
			},
			failing: func(id string) bool {
				st, _ := local.Get(id)
				return st.Vote() == Down || st.LocalFault != ""
			},
		})
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
		voters = append(voters, voter{
			origin: origin, site: r.Site, at: r.At,
			state:   func(id string) State { return targets[id] },
			failing: func(id string) bool { return targets[id] == Down },
		})
	}
	slices.Sort(v.stale)
	slices.Sort(v.mismatched)

	// Voters in a stable order (by site, then origin), so that the
	// votes of one site are counted together.
	slices.SortFunc(voters, func(a, b voter) int {
		if c := strings.Compare(a.site, b.site); c != 0 {
			return c
		}
		return strings.Compare(a.origin, b.origin)
	})
	ids := slices.Sorted(maps.Keys(in.Sites))
	voters = v.setAsideSuspects(voters, ids, in.Sites)

	quiet := quietRule{now: in.Now, after: in.Quiet}
	if in.Quiet <= 0 || in.Quiet >= in.Staleness {
		quiet.after = 0
	}
	for _, id := range ids {
		vd, recheck, contested := decide(id, in.Sites[id], voters, quiet)
		v.verdicts[id] = vd
		if contested {
			v.contested = append(v.contested, id)
		}
		if !recheck.IsZero() && (v.nextExpiry.IsZero() || recheck.Before(v.nextExpiry)) {
			v.nextExpiry = recheck
		}
	}
	return v
}

// quietRule is what decide needs to judge a site quiet: the time of the
// merge and MergeInput.Quiet (after; zero when the rule is off).
type quietRule struct {
	now   time.Time
	after time.Duration
}

// setAsideSuspects returns voters without those whose view is suspect,
// and records their names in v.suspect. A view is suspect when none of
// its probes succeeds (it votes Up on no endpoint) while it fails on
// endpoints in at least two sites, and for most of the endpoints it fails
// on (a strict majority) a strict majority of the other voters' votes say
// Up. A node out of file descriptors, cut off from every endpoint, or
// behind a broken firewall then cannot withdraw what the others see
// healthy. One site's endpoints failing is what a site outage looks like,
// so it never makes a view suspect, not even together with a view of
// another site that lags behind; and when every node sees everything down
// (an outage everywhere), nobody is suspect.
func (v *View) setAsideSuspects(voters []voter, ids []string, sites map[string]string) []voter {
	if len(voters) < 2 {
		return voters
	}
	// All votes per endpoint, so that "the others" is all minus one.
	all := make(map[string]Votes, len(ids))
	for _, id := range ids {
		var vs Votes
		for _, vt := range voters {
			switch vt.state(id) {
			case Up:
				vs.Up++
			case Down:
				vs.Down++
			}
		}
		all[id] = vs
	}
	kept := voters[:0:0]
	for _, vt := range voters {
		up := false
		failing, contradicted := 0, 0
		var failingSites []string
		for _, id := range ids {
			st := vt.state(id)
			if st == Up {
				up = true
				break
			}
			if !vt.failing(id) {
				continue
			}
			if !slices.Contains(failingSites, sites[id]) {
				failingSites = append(failingSites, sites[id])
			}
			failing++
			others := all[id]
			if st == Down {
				others.Down--
			}
			if others.Up > others.Down {
				contradicted++
			}
		}
		if !up && len(failingSites) >= 2 && 2*contradicted > failing {
			v.suspect = append(v.suspect, vt.origin)
			continue
		}
		kept = append(kept, vt)
	}
	slices.Sort(v.suspect)
	return kept
}

// decide applies the merge rules to one endpoint in site. voters are
// sorted by site. recheck, when not zero, is when the verdict changes by
// itself if nothing else does: when the endpoint's own site turns quiet
// (see MergeInput.Quiet) while the cross-check would withdraw it.
// contested says that this node votes Up and another voter Down.
func decide(id, site string, voters []voter, q quietRule) (vd verdict, recheck time.Time, contested bool) {
	vd = verdict{site: site}
	// heard is the latest heartbeat of the site's own voters that vote
	// (this node's snapshot, whose at is zero, is never among them);
	// local is this node's own vote, and ownLocal whether it is one of
	// the site's.
	var heard time.Time
	local, ownLocal, peerDown := Unknown, false, false
	for i := 0; i < len(voters); {
		// One site's votes.
		var vs Votes
		j := i
		for ; j < len(voters) && voters[j].site == voters[i].site; j++ {
			st := voters[j].state(id)
			switch st {
			case Up:
				vs.Up++
			case Down:
				vs.Down++
			}
			switch vt := voters[j]; {
			case vt.at.IsZero():
				local, ownLocal = st, vt.site == site
			case st == Down:
				peerDown = true
			}
			if voters[j].site == site && st != Unknown && voters[j].at.After(heard) {
				heard = voters[j].at
			}
		}
		switch {
		case voters[i].site == site:
			vd.own = vs
		case vs.Total() == 0:
		default:
			vd.cross.Up += vs.Up
			vd.cross.Down += vs.Down
			switch {
			case vs.Up > vs.Down:
				vd.crossSites.Up++
			case vs.Down > vs.Up:
				vd.crossSites.Down++
			default:
				vd.crossSites.Split++
			}
		}
		i = j
	}
	own, cross := vd.own, vd.cross
	switch {
	case own.Down > own.Up:
		// The site's own nodes agree it is down: withdrawn, unless every
		// other site that votes sees it up, in which case the problem is
		// more likely on the path from the site's own probers (or in
		// them) than at the endpoint, and users elsewhere still reach it.
		if vd.crossSites.Up > 0 && vd.crossSites.Up == vd.crossSites.Total() {
			vd.rule, vd.up = ruleOverruled, true
		} else {
			vd.rule, vd.up = ruleOwn, false
		}
	case own.Up > own.Down:
		vd.rule, vd.up = ruleOwn, true
	case own.Total() > 0:
		// A tie inside the site: the other sites' votes break it; it is
		// withdrawn only when a strict majority of them say down.
		if cross.Down > cross.Up {
			vd.rule, vd.up = ruleTie, false
		} else {
			vd.rule, vd.up = ruleOwn, true
		}
	case cross.Total() > 0:
		// The site is silent: its nodes are dead, cut off from us or
		// unable to probe. The other sites cross-check it, and it is
		// withdrawn when a strict majority of their votes say down; a tie
		// keeps it, as one witness cannot outweigh another.
		vd.rule, vd.up = ruleCross, cross.Down <= cross.Up
	default:
		vd.rule, vd.up = ruleNobody, true
	}
	// A quiet site: its own votes are all old news, and the cross-check
	// would withdraw the endpoint once they went stale. Withdraw it now:
	// this only brings forward what staleness would decide, and only
	// when the other sites' probes and the site's silence agree.
	if vd.up && q.after > 0 && !(ownLocal && local != Unknown) && vd.own.Total() > 0 && cross.Down > cross.Up {
		if quietAt := heard.Add(q.after); q.now.Before(quietAt) {
			recheck = quietAt
		} else {
			vd.rule, vd.up, vd.quiet = ruleQuiet, false, q.after
		}
	}
	return vd, recheck, local == Up && peerDown
}
