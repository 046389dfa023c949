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
	reports    map[string]held
	// gone holds origins that left or died, with the highest Seq they
	// had. Reports not newer than that are refused, so a late packet or a
	// peer's push/pull cannot bring a departed node's report back. A
	// restarted process has a higher Seq and gets through; a node that
	// memberlist declares alive again is forgotten from gone on join.
	gone map[string]tombstone
}

// held is a report with the origin's latest heartbeat that refreshed it
// (0: none yet, or the origin is of an earlier version and sends none). At
// is when, by our clock, the origin made that heartbeat, as far as we can
// tell: the receive time less the age every relay on the way added.
type held struct {
	health.Received
	beat uint64
}

// refresh takes a sign of life from the origin of h's report: heartbeat
// beat (0 for none), made at at. It reports whether At moved. A
// heartbeat counts once, the first time it arrives: the same heartbeat
// coming back through other relays (each of which adds its transit time
// unseen, so it looks a little younger each time) never moves At, so
// relays passing a silent origin's last heartbeat around cannot keep it
// fresh. A newer heartbeat moves At forward. An older one is taken only
// when the one held is stale and it is fresh (the held one was forged, or
// the origin restarted with its clock set back): like a Seq, a forged
// heartbeat number hides the origin's own for at most staleness.
func (h *held) refresh(beat uint64, at, now time.Time, staleness time.Duration) bool {
	prev := h.At
	switch {
	case beat == 0:
		// No heartbeat number: a node of an earlier version, whose
		// reports the origin itself re-sends; the latest word wins.
		h.At = laterOf(at, h.At)
	case beat > h.beat:
		h.beat, h.At = beat, laterOf(at, h.At)
	case beat < h.beat && now.Sub(h.At) >= staleness && now.Sub(at) < staleness:
		h.beat, h.At = beat, at
	}
	return h.At.After(prev)
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
		reports:    make(map[string]held),
		gone:       make(map[string]tombstone),
	}
}

// apply stores r if it is newer than the report held for its origin. at
// is when the origin was last heard from by our clock (receive time minus
// the age the sender attached), at heartbeat beat (0 for none). An equal
// Seq only refreshes (see held.refresh). Sequence numbers order one
// origin's reports, but a member can claim any origin, so the Seq held is
// trusted only while it is fresh:
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
func (t *table) apply(r health.Report, beat uint64, at, now time.Time) outcome {
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
		t.reports[r.Origin] = held{health.Received{Report: r, At: at}, beat}
		return changed
	case r.Seq > cur.Seq:
		if fresh(cur.At) && !fresh(at) {
			return ignored
		}
		// The origin was alive at both times; keep the later. The
		// heartbeat is the new report's own: one that came without one
		// (a node of an earlier version, or a forgery) is not relayed.
		t.reports[r.Origin] = held{health.Received{Report: r, At: laterOf(at, cur.At)}, beat}
		if sameContent(cur.Report, r) {
			return stored
		}
		return changed
	case r.Seq == cur.Seq:
		if cur.refresh(beat, at, now, t.staleness) {
			t.reports[r.Origin] = cur
			return refreshed
		}
		return ignored
	case !fresh(cur.At) && fresh(at):
		t.reports[r.Origin] = held{health.Received{Report: r, At: at}, beat}
		if sameContent(cur.Report, r) {
			return stored
		}
		return changed
	default:
		return ignored
	}
}

// beatOutcome is what a digest entry did to the table.
type beatOutcome uint8

const (
	// beatIgnored: nothing to do (old news, a departed incarnation, or a
	// heartbeat already counted).
	beatIgnored beatOutcome = iota
	// beatRefreshed: the report held moved its At forward.
	beatRefreshed
	// beatRevived: the same, for a report that had gone stale.
	beatRevived
	// beatMissing: the origin has a report we should hold and do not (a
	// newer Seq, a fresh one where ours went stale, or one that would
	// undo a leave): fetch it.
	beatMissing
	// beatUnknown: no report held from the origin, nor a departure.
	beatUnknown
)

// beat applies one digest entry: origin was alive at at (by our clock)
// with heartbeat beat, holding the report with Seq seq. A digest carries
// no report, so it never changes the content held: it refreshes the
// report with that very Seq, or says a report must be fetched. The Seq
// and freshness rules are those of apply, so fetching and applying the
// report would give the same outcome. The caller has checked that at is
// fresh and seq and beat plausible.
func (t *table) beat(origin string, seq, beat uint64, at, now time.Time) beatOutcome {
	if g, ok := t.gone[origin]; ok {
		if seq <= g.seq && !(g.soft && at.After(g.at.Add(t.leaveGrace))) {
			return beatIgnored
		}
		return beatMissing
	}
	cur, ok := t.reports[origin]
	switch {
	case !ok:
		return beatUnknown
	case seq == cur.Seq:
		wasFresh := now.Sub(cur.At) < t.staleness
		if !cur.refresh(beat, at, now, t.staleness) {
			return beatIgnored
		}
		t.reports[origin] = cur
		if !wasFresh && now.Sub(cur.At) < t.staleness {
			return beatRevived
		}
		return beatRefreshed
	case seq > cur.Seq, now.Sub(cur.At) >= t.staleness:
		return beatMissing
	default:
		return beatIgnored
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
			out = append(out, r.Received)
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
