package cluster

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gslbd/gslbd/health"
)

// outcome is what applying a report did to the table.
type outcome uint8

const (
	// ignored: not newer than what the table holds, from a departed
	// incarnation, or already too old to keep.
	ignored outcome = iota
	// refreshed: the same Seq again (a heartbeat); only At moved.
	refreshed
	// stored: a newer Seq whose content equals the one held.
	stored
	// changed: a new origin, or a newer Seq with different content.
	changed
)

// table holds the latest report per remote origin. It is a plain value
// with no clock and no lock of its own: [Cluster] guards it with its
// mutex and passes the time in, which keeps every rule testable without
// sockets.
type table struct {
	// staleness is the freshness bound: a report last heard longer ago
	// is stale.
	staleness time.Duration
	// dropAfter is the age beyond which a report is forgotten (10 times
	// the staleness bound).
	dropAfter time.Duration
	// leaveGrace is how long after a leave message a report of its
	// origin may still be a copy that was on its way before the leave.
	leaveGrace time.Duration
	reports    map[string]health.Received
	// gone holds origins that left or died, with the highest Seq they
	// had. Reports not newer than that are refused, so a late packet or a
	// peer's push/pull cannot bring a departed node's report back. A
	// restarted process has a higher Seq and gets through; a node that
	// memberlist declares alive again is forgotten from gone on join.
	gone map[string]tombstone
}

type tombstone struct {
	seq uint64
	at  time.Time
	// soft marks a tombstone set by a leave message, which any member
	// could have sent: a report heard after at plus leaveGrace lifts it.
	// memberlist's own word (a departure) sets a hard one.
	soft bool
}

func newTable(staleness, leaveGrace time.Duration) table {
	return table{
		staleness:  staleness,
		dropAfter:  dropFactor * staleness,
		leaveGrace: leaveGrace,
		reports:    make(map[string]health.Received),
		gone:       make(map[string]tombstone),
	}
}

// apply stores r if it is newer than the report held for its origin. at
// is when the origin was last heard from by our clock (receive time minus
// the age the sender attached). Equal Seq moves At forward. Sequence
// numbers order one origin's reports, but a member can claim any origin,
// so the Seq held is trusted only while it is fresh:
//   - a lower Seq replaces a stale report when it is itself fresh (the
//     origin is talking, with a lower Seq than a report nobody has
//     refreshed: that one was forged, or the origin restarted with its
//     clock set back);
//   - a higher Seq that is stale does not replace a fresh report (a
//     report the origin made later cannot have been heard earlier than
//     one it made before).
//
// So one forged report, whatever its Seq, hides the origin's own reports
// for at most Staleness.
func (t *table) apply(r health.Report, at, now time.Time) outcome {
	if now.Sub(at) > t.dropAfter {
		return ignored
	}
	if g, ok := t.gone[r.Origin]; ok {
		if r.Seq <= g.seq && !(g.soft && at.After(g.at.Add(t.leaveGrace))) {
			return ignored
		}
		delete(t.gone, r.Origin)
	}
	fresh := func(at time.Time) bool { return now.Sub(at) < t.staleness }
	cur, ok := t.reports[r.Origin]
	switch {
	case !ok:
		t.reports[r.Origin] = health.Received{Report: r, At: at}
		return changed
	case r.Seq > cur.Seq:
		if fresh(cur.At) && !fresh(at) {
			return ignored
		}
		// The origin was alive at both times; keep the later.
		t.reports[r.Origin] = health.Received{Report: r, At: laterOf(at, cur.At)}
		if sameContent(cur.Report, r) {
			return stored
		}
		return changed
	case r.Seq == cur.Seq:
		if at.After(cur.At) {
			cur.At = at
			t.reports[r.Origin] = cur
			return refreshed
		}
		return ignored
	case !fresh(cur.At) && fresh(at):
		t.reports[r.Origin] = health.Received{Report: r, At: at}
		if sameContent(cur.Report, r) {
			return stored
		}
		return changed
	default:
		return ignored
	}
}

// leave forgets origin's report on its leave message, as drop does, but
// with a soft tombstone: a report heard after the leave lifts it.
func (t *table) leave(origin string, seq uint64, now time.Time) bool {
	hard := false
	if g, ok := t.gone[origin]; ok && !g.soft {
		hard = true
	}
	dropped := t.drop(origin, seq, now)
	if g, ok := t.gone[origin]; ok && !hard {
		g.soft = true
		t.gone[origin] = g
	}
	return dropped
}

// drop forgets origin's report, unless the report held is newer than seq
// (it then comes from a later incarnation than the departure). It returns
// whether a report was dropped.
func (t *table) drop(origin string, seq uint64, now time.Time) bool {
	cur, ok := t.reports[origin]
	if ok && cur.Seq > seq {
		return false
	}
	if g, ok := t.gone[origin]; !ok || g.seq < seq || g.soft {
		t.gone[origin] = tombstone{seq: max(seq, g.seq), at: now}
	}
	delete(t.reports, origin)
	return ok
}

// dropDeparted forgets origin's report whatever its Seq: memberlist says
// the node itself is gone.
func (t *table) dropDeparted(origin string, now time.Time) bool {
	return t.drop(origin, t.reports[origin].Seq, now)
}

// rejoined forgets that origin departed: memberlist says it is alive
// again (it refuted a false death), so its current Seq is welcome.
func (t *table) rejoined(origin string) {
	delete(t.gone, origin)
}

// expire drops reports older than dropAfter and tombstones older than
// that (by then any copy still travelling is too old to be applied). It
// returns the origins whose reports were dropped, sorted.
func (t *table) expire(now time.Time) []string {
	var dropped []string
	for origin, r := range t.reports {
		if now.Sub(r.At) > t.dropAfter {
			delete(t.reports, origin)
			dropped = append(dropped, origin)
		}
	}
	for origin, g := range t.gone {
		if now.Sub(g.at) > t.dropAfter {
			delete(t.gone, origin)
		}
	}
	slices.Sort(dropped)
	return dropped
}

// received returns the reports not older than dropAfter, sorted by origin.
func (t *table) received(now time.Time) []health.Received {
	out := make([]health.Received, 0, len(t.reports))
	for _, r := range t.reports {
		if now.Sub(r.At) <= t.dropAfter {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b health.Received) int { return strings.Compare(a.Origin, b.Origin) })
	return out
}

// sameContent reports whether two reports of one origin say the same
// thing, ignoring Seq and Time.
func sameContent(a, b health.Report) bool {
	return a.Site == b.Site &&
		a.ConfigHash == b.ConfigHash &&
		a.Ready == b.Ready &&
		maps.Equal(a.Targets, b.Targets)
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
