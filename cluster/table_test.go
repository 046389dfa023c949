package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/gslbd/gslbd/health"
)

func TestTableApply(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	up := map[string]health.State{"t": health.Up}
	down := map[string]health.State{"t": health.Down}
	rep := func(seq uint64, targets map[string]health.State) health.Report {
		return health.Report{Origin: "x", Site: "s", Seq: seq, Targets: targets}
	}
	const dropAfter = 7 * time.Second

	type step struct {
		r        health.Report
		at, now  time.Time
		want     outcome
		wantSeq  uint64
		wantAt   time.Time
		wantHeld bool
	}
	tests := []struct {
		name  string
		setup func(*table)
		steps []step
	}{
		{
			name:  "new origin is a change",
			steps: []step{{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true}},
		},
		{
			name: "same seq refreshes At",
			steps: []step{
				{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true},
				{r: rep(5, up), at: t0.Add(time.Second), now: t0.Add(time.Second), want: refreshed, wantSeq: 5, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name: "same seq with an older At (relayed) changes nothing",
			steps: []step{
				{r: rep(5, up), at: t0.Add(time.Second), now: t0.Add(time.Second), want: changed, wantSeq: 5, wantAt: t0.Add(time.Second), wantHeld: true},
				{r: rep(5, up), at: t0, now: t0.Add(2 * time.Second), want: ignored, wantSeq: 5, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name: "lower seq ignored while the held report is fresh",
			steps: []step{
				{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true},
				{r: rep(4, down), at: t0.Add(600 * time.Millisecond), now: t0.Add(600 * time.Millisecond), want: ignored, wantSeq: 5, wantAt: t0, wantHeld: true},
			},
		},
		{
			// A forged report with a high Seq is not refreshed by its
			// origin: once stale, the origin's own (lower) Seq takes over.
			name: "lower seq, fresh, replaces a stale report",
			steps: []step{
				{r: rep(1<<62, down), at: t0, now: t0, want: changed, wantSeq: 1 << 62, wantAt: t0, wantHeld: true},
				{r: rep(4, up), at: t0.Add(600 * time.Millisecond), now: t0.Add(600 * time.Millisecond), want: ignored, wantSeq: 1 << 62, wantAt: t0, wantHeld: true},
				{r: rep(4, up), at: t0.Add(800 * time.Millisecond), now: t0.Add(800 * time.Millisecond), want: changed, wantSeq: 4, wantAt: t0.Add(800 * time.Millisecond), wantHeld: true},
				{r: rep(4, up), at: t0.Add(time.Second), now: t0.Add(time.Second), want: refreshed, wantSeq: 4, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name: "lower seq, stale, does not replace a stale report",
			steps: []step{
				{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true},
				{r: rep(4, down), at: t0.Add(100 * time.Millisecond), now: t0.Add(time.Second), want: ignored, wantSeq: 5, wantAt: t0, wantHeld: true},
			},
		},
		{
			// A relay still holding the forged report passes it on with
			// its age: it cannot push the origin's fresh report out.
			name: "higher seq, stale, does not replace a fresh report",
			steps: []step{
				{r: rep(5, up), at: t0.Add(time.Second), now: t0.Add(time.Second), want: changed, wantSeq: 5, wantAt: t0.Add(time.Second), wantHeld: true},
				{r: rep(1<<62, down), at: t0, now: t0.Add(time.Second), want: ignored, wantSeq: 5, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name:  "report heard after a leave lifts it; a copy from before does not",
			setup: func(tb *table) { tb.apply(rep(5, up), 0, t0, t0); tb.leave("x", 5, t0) },
			steps: []step{
				{r: rep(5, up), at: t0.Add(50 * time.Millisecond), now: t0.Add(50 * time.Millisecond), want: ignored},
				{r: rep(5, up), at: t0.Add(150 * time.Millisecond), now: t0.Add(150 * time.Millisecond), want: changed, wantSeq: 5, wantAt: t0.Add(150 * time.Millisecond), wantHeld: true},
			},
		},
		{
			name:  "memberlist's departure is not lifted by a report",
			setup: func(tb *table) { tb.apply(rep(5, up), 0, t0, t0); tb.leave("x", 5, t0); tb.dropDeparted("x", t0) },
			steps: []step{
				{r: rep(5, up), at: t0.Add(500 * time.Millisecond), now: t0.Add(500 * time.Millisecond), want: ignored},
			},
		},
		{
			name: "higher seq same content is stored, not a change",
			steps: []step{
				{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true},
				{r: rep(6, up), at: t0.Add(time.Second), now: t0.Add(time.Second), want: stored, wantSeq: 6, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name: "higher seq new content is a change",
			steps: []step{
				{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true},
				{r: rep(6, down), at: t0.Add(time.Second), now: t0.Add(time.Second), want: changed, wantSeq: 6, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name: "higher seq relayed with an older At keeps the later At",
			steps: []step{
				{r: rep(5, up), at: t0.Add(time.Second), now: t0.Add(time.Second), want: changed, wantSeq: 5, wantAt: t0.Add(time.Second), wantHeld: true},
				{r: rep(6, down), at: t0.Add(700 * time.Millisecond), now: t0.Add(time.Second), want: changed, wantSeq: 6, wantAt: t0.Add(time.Second), wantHeld: true},
			},
		},
		{
			name:  "too old on arrival",
			steps: []step{{r: rep(5, up), at: t0, now: t0.Add(dropAfter + time.Millisecond), want: ignored}},
		},
		{
			name:  "departed incarnation refused",
			setup: func(tb *table) { tb.drop("x", 5, t0) },
			steps: []step{
				{r: rep(5, up), at: t0, now: t0, want: ignored},
				{r: rep(4, up), at: t0, now: t0, want: ignored},
				{r: rep(6, up), at: t0, now: t0, want: changed, wantSeq: 6, wantAt: t0, wantHeld: true},
			},
		},
		{
			name:  "rejoined origin accepted at the same seq",
			setup: func(tb *table) { tb.drop("x", 5, t0); tb.rejoined("x") },
			steps: []step{{r: rep(5, up), at: t0, now: t0, want: changed, wantSeq: 5, wantAt: t0, wantHeld: true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(dropAfter/dropFactor, 100*time.Millisecond)
			if tc.setup != nil {
				tc.setup(&tb)
			}
			for i, s := range tc.steps {
				if got := tb.apply(s.r, 0, s.at, s.now); got != s.want {
					t.Fatalf("step %d: apply(seq %d) = %v, want %v", i, s.r.Seq, got, s.want)
				}
				got, held := tb.reports["x"]
				if held != s.wantHeld || got.Seq != s.wantSeq || !got.At.Equal(s.wantAt) {
					t.Fatalf("step %d: held %v seq %d at %v, want held %v seq %d at %v", i, held, got.Seq, got.At, s.wantHeld, s.wantSeq, s.wantAt)
				}
			}
		})
	}
}

func TestTableDrop(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := newTable(time.Second/dropFactor, 50*time.Millisecond)
	tb.apply(health.Report{Origin: "x", Seq: 10}, 0, t0, t0)
	if got := tb.drop("x", 9, t0); got {
		t.Errorf("drop(x, 9) with seq 10 held = true, want false (leave from an earlier incarnation)")
	}
	if got := tb.drop("x", 10, t0); !got {
		t.Errorf("drop(x, 10) = false, want true")
	}
	if got := tb.drop("x", 10, t0); got {
		t.Errorf("second drop(x, 10) = true, want false")
	}
	tb.apply(health.Report{Origin: "y", Seq: 3}, 0, t0, t0)
	if got := tb.dropDeparted("y", t0); !got {
		t.Errorf("dropDeparted(y) = false, want true")
	}
	if got := tb.apply(health.Report{Origin: "y", Seq: 3}, 0, t0, t0); got != ignored {
		t.Errorf("apply(y seq 3) after departure = %v, want ignored", got)
	}
}

func TestTableExpire(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := newTable(time.Second/dropFactor, 50*time.Millisecond)
	tb.apply(health.Report{Origin: "old", Seq: 1}, 0, t0, t0)
	tb.apply(health.Report{Origin: "new", Seq: 1}, 0, t0.Add(500*time.Millisecond), t0.Add(500*time.Millisecond))
	tb.drop("gone", 1, t0)

	now := t0.Add(1200 * time.Millisecond)
	if got := origins(tb.received(now)); !slices.Equal(got, []string{"new"}) {
		t.Errorf("received(now) = %v, want [new]: an expired report is hidden before expire runs", got)
	}
	if got := tb.expire(now); !slices.Equal(got, []string{"old"}) {
		t.Errorf("expire(now) = %v, want [old]", got)
	}
	if _, ok := tb.gone["gone"]; ok {
		t.Error("tombstone older than dropAfter kept")
	}
	if _, ok := tb.reports["new"]; !ok {
		t.Error("fresh report expired")
	}
}

func origins(rs []health.Received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Origin)
	}
	return out
}
