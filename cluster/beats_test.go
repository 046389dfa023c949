package cluster

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/health"
)

func TestBeatsRoundTrip(t *testing.T) {
	want := wireBeats{from: "n07", entries: []beatEntry{
		{origin: "n07", seq: 1_764_000_000_123_456_789, beat: 1_764_000_000_123},
		{origin: "n12", seq: 1_764_000_000_000_000_001, beat: 1_764_000_000_002, age: 450 * time.Millisecond},
	}}
	frame := beatsHeader(want.from)
	for _, e := range want.entries {
		before := len(frame)
		frame = appendBeat(frame, e)
		if got := len(frame) - before; got != beatLen(e) {
			t.Errorf("beatLen(%+v) = %d, appendBeat added %d", e, beatLen(e), got)
		}
	}
	k, body, err := splitKind(frame)
	if err != nil || k != kindBeats {
		t.Fatalf("splitKind = %v, %v, want beats", k, err)
	}
	got, err := decodeBeats(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.from != want.from || !slices.Equal(got.entries, want.entries) {
		t.Errorf("decodeBeats(appendBeat(...)) = %+v, want %+v", got, want)
	}
	// The point of the binary form: 30 origins fit one packet with room
	// to spare for memberlist's own messages.
	frame = beatsHeader("node-of-site-07-03")
	for i := range 30 {
		frame = appendBeat(frame, beatEntry{origin: fmt.Sprintf("node-of-site-%02d-%02d", i%10, i/10),
			seq: 1_764_000_000_123_456_789, beat: 1_764_000_000_123, age: 699 * time.Millisecond})
	}
	if len(frame) > maxPacket {
		t.Errorf("a digest of 30 origins is %d bytes, more than a packet's %d", len(frame), maxPacket)
	}
	t.Logf("a digest of 30 origins with 18-byte names is %d bytes", len(frame))
}

func TestDecodeBeatsRejects(t *testing.T) {
	entry := func(origin string, seq, beat, ageMs uint64) []byte {
		return appendBeat(nil, beatEntry{origin: origin, seq: seq, beat: beat, age: time.Duration(ageMs) * time.Millisecond})
	}
	head := appendName(nil, "n1")
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"no sender", appendName(nil, "")},
		{"sender length past the end", []byte{5, 'a'}},
		{"sender name too long", appendName(nil, strings.Repeat("x", maxName+1))},
		{"empty origin", append(head, entry("", 1, 1, 0)...)},
		{"zero seq", append(head, entry("x", 0, 1, 0)...)},
		{"zero beat", append(head, entry("x", 1, 0, 0)...)},
		{"cut short", append(head, entry("x", 1, 1, 0)[:3]...)},
		{"bad varint", append(append(head, 1, 'x'), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := decodeBeats(tc.body); err == nil {
				t.Errorf("decodeBeats(%v) = %+v, want error", tc.body, got)
			}
		})
	}
	// A far-future age is not an error: it is old news, and capped so it
	// cannot overflow.
	huge := binary.AppendUvarint(append(appendName(head, "x"), 1, 1), 1<<63)
	got, err := decodeBeats(huge)
	if err != nil || len(got.entries) != 1 || got.entries[0].age != maxAgeMillis*time.Millisecond {
		t.Errorf("decodeBeats(huge age) = %+v, %v, want the age capped at %v", got, err, maxAgeMillis*time.Millisecond)
	}
}

// TestHeldRefresh is the freshness rule: a heartbeat counts once, the
// first time it arrives.
func TestHeldRefresh(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const staleness = 700 * time.Millisecond
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		beat     uint64
		at, now  time.Time
		moved    bool
		wantBeat uint64
		wantAt   time.Time
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a newer heartbeat moves At", []step{
			{beat: 11, at: ms(100), now: ms(100), moved: true, wantBeat: 11, wantAt: ms(100)},
		}},
		{"the same heartbeat relayed later, looking younger, does not", []step{
			{beat: 10, at: ms(5), now: ms(100), moved: false, wantBeat: 10, wantAt: t0},
		}},
		{"a newer heartbeat that looks older than the one held keeps At", []step{
			{beat: 11, at: ms(-50), now: ms(100), moved: false, wantBeat: 11, wantAt: t0},
		}},
		{"an older heartbeat is ignored while the held one is fresh", []step{
			{beat: 9, at: ms(600), now: ms(600), moved: false, wantBeat: 10, wantAt: t0},
		}},
		{"an older heartbeat, fresh, replaces a stale one (a forged number hides for at most staleness)", []step{
			{beat: 9, at: ms(800), now: ms(800), moved: true, wantBeat: 9, wantAt: ms(800)},
			{beat: 10, at: ms(900), now: ms(900), moved: true, wantBeat: 10, wantAt: ms(900)},
		}},
		{"an older heartbeat that is stale itself does not", []step{
			{beat: 9, at: ms(50), now: ms(800), moved: false, wantBeat: 10, wantAt: t0},
		}},
		{"no heartbeat number (an earlier version): the latest word wins", []step{
			{beat: 0, at: ms(200), now: ms(200), moved: true, wantBeat: 10, wantAt: ms(200)},
			{beat: 0, at: ms(100), now: ms(300), moved: false, wantBeat: 10, wantAt: ms(200)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := held{health.Received{Report: health.Report{Origin: "x", Seq: 1}, At: t0}, 10}
			for i, s := range tc.steps {
				if got := h.refresh(s.beat, s.at, s.now, staleness); got != s.moved {
					t.Errorf("step %d: refresh(beat %d, at %v) = %v, want %v", i, s.beat, s.at.Sub(t0), got, s.moved)
				}
				if h.beat != s.wantBeat || !h.At.Equal(s.wantAt) {
					t.Errorf("step %d: held beat %d at %v, want beat %d at %v", i, h.beat, h.At.Sub(t0), s.wantBeat, s.wantAt.Sub(t0))
				}
			}
		})
	}
}

// relay hands every digest a gives at now to b, delay later.
func relay(a, b *Cluster, now time.Time, delay time.Duration) {
	if d := a.digest(now, 1400); d != nil {
		if err := b.apply(d, now.Add(delay)); err != nil {
			panic(err)
		}
	}
}

// bareWith returns a bare Cluster named name that knows the members
// names (alive, of this version).
func bareWith(t *testing.T, name string, members ...string) *Cluster {
	t.Helper()
	c := newBare(t)
	c.cfg.Name = name
	for _, m := range members {
		c.memberEvent(memberlistNode{Name: m, Meta: mustMetaFeatures(t, "s", "h", ourFeatures)}.node(), MemberAlive)
	}
	return c
}

// TestRelayCannotKeepSilentOriginFresh: o's last heartbeat bounces
// between two relays, each hop taking 10ms that the age does not show (as
// transit does). Were the freshest-looking copy taken each time, every
// round trip would make o look 20ms younger and it would never go stale;
// as it is, o goes stale Staleness after its last heartbeat on both.
func TestRelayCannotKeepSilentOriginFresh(t *testing.T) {
	x := bareWith(t, "x", "o", "y")
	y := bareWith(t, "y", "o", "x")
	t0 := time.Now()
	last := encodeReport(health.Report{Origin: "o", Site: "s", Seq: 42, ConfigHash: "h"}, 1000, 0)
	for _, c := range []*Cluster{x, y} {
		if err := c.apply(last, t0); err != nil {
			t.Fatal(err)
		}
	}
	const hop = 10 * time.Millisecond
	now := t0
	for now.Sub(t0) < 2*x.cfg.Staleness {
		now = now.Add(50 * time.Millisecond)
		relay(x, y, now, hop)
		relay(y, x, now.Add(hop), hop)
	}
	for _, c := range []*Cluster{x, y} {
		r, ok := c.table.reports["o"]
		if !ok {
			t.Fatalf("%s dropped o's report", c.cfg.Name)
		}
		if r.At.After(t0) {
			t.Errorf("%s holds o's last heartbeat as made %v after it was: relays refreshed a silent origin", c.cfg.Name, r.At.Sub(t0))
		}
	}
	// A new heartbeat of o's own does refresh it, through a relay too.
	o := beatsHeader("o")
	o = appendBeat(o, beatEntry{origin: "o", seq: 42, beat: 1001})
	if err := x.apply(o, now); err != nil {
		t.Fatal(err)
	}
	relay(x, y, now, hop)
	if r := y.table.reports["o"]; !r.At.Equal(now.Add(hop)) {
		t.Errorf("y holds o's new heartbeat as made %v after x got it, want %v (x's age, 0, plus the unseen hop)", r.At.Sub(now), hop)
	}
}

// TestBeatsBounded: a digest is a member's word, bounded like a report's.
func TestBeatsBounded(t *testing.T) {
	c := bareWith(t, "self", "o", "relay")
	now := time.Now()
	if err := c.apply(encodeReport(health.Report{Origin: "o", Seq: 42}, 1000, 0), now); err != nil {
		t.Fatal(err)
	}
	held := func() held { return c.table.reports["o"] }
	digest := func(entries ...beatEntry) []byte {
		b := beatsHeader("relay")
		for _, e := range entries {
			b = appendBeat(b, e)
		}
		return b
	}
	nowMs := uint64(now.UnixMilli())
	later := now.Add(100 * time.Millisecond)
	cases := []struct {
		name      string
		entry     beatEntry
		kind, why string
	}{
		{"heartbeat number far ahead of our clock", beatEntry{origin: "o", seq: 42, beat: nowMs + uint64(2*c.cfg.MaxSkew/time.Millisecond)}, rejBeat, reasonTimeAhead},
		{"seq far ahead of our clock", beatEntry{origin: "o", seq: uint64(now.Add(2 * c.cfg.MaxSkew).UnixNano()), beat: 2000}, rejBeat, reasonSeqAhead},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rejectedBare(c, tc.kind, tc.why)
			if err := c.apply(digest(tc.entry), later); err != nil {
				t.Fatal(err)
			}
			if got := rejectedBare(c, tc.kind, tc.why); got != before+1 {
				t.Errorf("rejected{%s,%s} = %v, want %v", tc.kind, tc.why, got, before+1)
			}
			if !held().At.Equal(now) || held().beat != 1000 {
				t.Errorf("o's report refreshed to beat %d at %v by a refused heartbeat", held().beat, held().At.Sub(now))
			}
			if _, ok := c.table.reports["ghost"]; ok {
				t.Error("a heartbeat made a report appear")
			}
			if len(c.wants) != 0 {
				t.Errorf("a refused heartbeat queued requests %v", c.wants)
			}
		})
	}
	// An origin memberlist has not listed: nothing appears, nothing is
	// asked.
	if err := c.apply(digest(beatEntry{origin: "ghost", seq: 1, beat: 2000}), later); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.table.reports["ghost"]; ok || len(c.wants) != 0 {
		t.Errorf("a heartbeat for an unknown origin made a report appear or asked %v", c.wants)
	}
	// Old news (older than Staleness) refreshes nothing and asks nothing.
	if err := c.apply(digest(beatEntry{origin: "o", seq: 43, beat: 3000, age: c.cfg.Staleness}), later); err != nil {
		t.Fatal(err)
	}
	if held().beat != 1000 || len(c.wants) != 0 {
		t.Errorf("an old heartbeat moved o's report to beat %d or asked %v", held().beat, c.wants)
	}
	// A fresh heartbeat for a newer Seq than held: the report is asked of
	// the digest's sender, once per Heartbeat however many digests say so.
	for range 3 {
		if err := c.apply(digest(beatEntry{origin: "o", seq: 43, beat: 3000}), later); err != nil {
			t.Fatal(err)
		}
	}
	if !c.wants["relay"]["o"] || len(c.wants) != 1 {
		t.Errorf("wants = %v, want o's report asked of relay", c.wants)
	}
	if held().Seq != 42 || !held().At.Equal(now) {
		t.Errorf("a heartbeat for Seq 43 refreshed the report of Seq 42 (at %v)", held().At.Sub(now))
	}
	// A departed node (memberlist's word) is not brought back by relays.
	c.memberEvent(memberlistNode{Name: "o", Meta: mustMetaFeatures(t, "s", "h", ourFeatures)}.node(), MemberDead)
	clear(c.wants)
	clear(c.asked)
	if err := c.apply(digest(beatEntry{origin: "o", seq: 42, beat: 4000}), later); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.table.reports["o"]; ok || len(c.wants) != 0 {
		t.Errorf("a relayed heartbeat of a dead node brought its report back or asked for it (wants %v)", c.wants)
	}
}

// TestWantBounded: a request for reports must come from a member, and is
// answered with reports held only.
func TestWantBounded(t *testing.T) {
	c := bareWith(t, "self", "asker")
	if err := c.apply(encodeReport(health.Report{Origin: "o", Seq: 42}, 1000, 0), time.Now()); err != nil {
		t.Fatal(err)
	}
	clear(c.replies) // the greeting owed to asker on joining
	if err := c.apply(encodeWant("stranger", []string{"o"}), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := rejectedBare(c, rejWant, reasonUnknownSender); got != 1 {
		t.Errorf("rejected{want,unknown_sender} = %v, want 1", got)
	}
	if err := c.apply(encodeWant("asker", []string{"o", "nobody", "self"}), time.Now()); err != nil {
		t.Fatal(err)
	}
	// self has announced nothing yet: only o's report is owed.
	if got := c.replies; len(got) != 1 || len(got["asker"]) != 1 || !got["asker"]["o"] {
		t.Errorf("replies = %v, want o's report for asker only", got)
	}
}

func rejectedBare(c *Cluster, kind, reason string) float64 {
	return testutil.ToFloat64(c.metrics.rejected.WithLabelValues(kind, reason))
}

func mustMetaFeatures(t *testing.T, site, hash string, f feature) []byte {
	t.Helper()
	b, err := encodeMeta(nodeMeta{Site: site, ConfigHash: hash, Features: f})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
