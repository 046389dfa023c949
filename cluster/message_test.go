package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/health"
)

func TestReportRoundTrip(t *testing.T) {
	r := health.Report{
		Origin: "n1", Site: "dc1", Seq: 1_764_000_000_123_456_789, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		ConfigHash: "abc", Ready: true,
		Targets: map[string]health.State{"web/dc1/192.0.2.1": health.Up, "web/dc1/192.0.2.2": health.Down, "web/dc1/192.0.2.3": health.Unknown},
	}
	frame := encodeReport(r, 0, 1500*time.Millisecond)
	k, body, err := splitKind(frame)
	if err != nil || k != kindReport {
		t.Fatalf("splitKind = %v, %v, want report", k, err)
	}
	got, err := decodeReport(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.age != 1500*time.Millisecond {
		t.Errorf("age = %v, want 1.5s", got.age)
	}
	g := got.report
	if g.Origin != r.Origin || g.Site != r.Site || g.Seq != r.Seq || !g.Time.Equal(r.Time) ||
		g.ConfigHash != r.ConfigHash || g.Ready != r.Ready || !maps.Equal(g.Targets, r.Targets) {
		t.Errorf("decodeReport(encodeReport(r)) = %+v, want %+v", g, r)
	}
}

func TestDecodeReportRejects(t *testing.T) {
	tests := []struct{ name, body string }{
		{"not json", `{`},
		{"trailing data", `{"origin":"x","seq":1}x`},
		{"no origin", `{"seq":1}`},
		{"no seq", `{"origin":"x"}`},
		{"negative age", `{"origin":"x","seq":1,"age_ms":-1}`},
		{"state out of range", `{"origin":"x","seq":1,"targets":{"t":3}}`},
		{"state not a number", `{"origin":"x","seq":1,"targets":{"t":"up"}}`},
		{"seq negative", `{"origin":"x","seq":-1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := decodeReport([]byte(tc.body)); err == nil {
				t.Errorf("decodeReport(%s) = %+v, want error", tc.body, got)
			}
		})
	}
}

func TestDecodeReportToleratesNewFields(t *testing.T) {
	got, err := decodeReport([]byte(`{"origin":"x","seq":1,"drained":["t"]}`))
	if err != nil {
		t.Fatalf("decodeReport with an unknown field: %v, want success (rolling upgrades)", err)
	}
	if got.report.Targets == nil {
		t.Error("Targets nil, want empty map")
	}
}

func TestStateFraming(t *testing.T) {
	a := encodeReport(health.Report{Origin: "a", Seq: 1}, 0, 0)
	b := encodeLeave("b", 2)
	state := appendStateFrame(appendStateFrame(nil, a), b)
	var got [][]byte
	if err := splitState(state, func(f []byte) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Errorf("splitState = %q, want %q and %q", got, a, b)
	}

	bad := []struct {
		name  string
		state []byte
	}{
		{"length beyond end", []byte{5, 1}},
		{"truncated uvarint", []byte{0x80}},
		{"nested state", appendStateFrame(nil, []byte{byte(kindState)})},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if err := splitState(tc.state, func([]byte) error { return nil }); err == nil {
				t.Errorf("splitState(%v) = nil, want error", tc.state)
			}
		})
	}
	stop := errors.New("stop")
	if err := splitState(state, func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("splitState with a failing fn = %v, want %v", err, stop)
	}
}

// newBare returns a Cluster without memberlist, enough to exercise the
// receive path.
func newBare(t testing.TB) *Cluster {
	cfg := Config{Name: "self", Site: "s", ConfigHash: "h", Bind: "127.0.0.1:0"}.withDefaults()
	c := &Cluster{
		cfg:       cfg,
		log:       slog.New(slog.DiscardHandler),
		changed:   make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		table:     newTable(cfg.Staleness, cfg.Heartbeat/2),
		replies:   map[string]map[string]bool{},
		wants:     map[string]map[string]bool{},
		asked:     map[string]time.Time{},
		members:   map[string]*member{},
		inflight:  map[string]bool{},
		rejectLog: newLogLimiter(rejectLogEvery),
	}
	c.hash.Store(&cfg.ConfigHash)
	var err error
	if c.metrics, err = newMetrics(nil, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStateAppliesThroughSameRules(t *testing.T) {
	src := newBare(t)
	now := time.Now()
	src.applyReport(reportMsg{report: health.Report{Origin: "x", Seq: 7, Targets: map[string]health.State{"t": health.Up}}, age: 2 * time.Second}, now)
	src.Announce(health.Report{Targets: map[string]health.State{"u": health.Down}})

	dst := newBare(t)
	dst.cfg.Name = "other"
	dst.mergeState(src.localState(now))
	if n := testutil.ToFloat64(dst.metrics.bad); n != 0 {
		t.Fatalf("bad messages = %v, want 0", n)
	}
	rs := dst.Reports()
	if got := origins(rs); len(got) != 2 || got[0] != "self" || got[1] != "x" {
		t.Fatalf("Reports() after merge = %v, want [self x]", got)
	}
	// x's report keeps its age through the state transfer.
	if age := time.Since(rs[1].At); age < 2*time.Second || age > 3*time.Second {
		t.Errorf("x's report is %v old after merge, want about 2s", age)
	}
	if rs[0].Site != "s" || rs[0].ConfigHash != "h" || rs[0].Seq == 0 {
		t.Errorf("announced report = %+v, want origin's site, hash and a seq", rs[0].Report)
	}
	// Our own report coming back is ignored.
	src.mergeState(dst.localState(now))
	if got := origins(src.Reports()); len(got) != 1 || got[0] != "x" {
		t.Errorf("src.Reports() after merging its own report back = %v, want [x]", got)
	}
}

func TestSeqGrowsAcrossRestarts(t *testing.T) {
	first := newBare(t)
	first.seq = uint64(time.Now().UnixNano())
	first.Announce(health.Report{})
	first.Announce(health.Report{})
	second := newBare(t)
	second.seq = uint64(time.Now().UnixNano())
	second.Announce(health.Report{})
	s1 := mustSeq(t, first)
	s2 := mustSeq(t, second)
	if s2 <= s1 {
		t.Errorf("seq after restart %d, not above %d before", s2, s1)
	}
}

func mustSeq(t *testing.T, c *Cluster) uint64 {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local == nil {
		t.Fatal("no local report")
	}
	return c.local.Seq
}

func TestLeaveDropsAndMarksLeft(t *testing.T) {
	c := newBare(t)
	now := time.Now()
	c.memberEvent(memberlistNode{Name: "x", Meta: mustMeta(t, "s", "h")}.node(), MemberAlive)
	c.applyReport(reportMsg{report: health.Report{Origin: "x", Seq: 10}}, now)
	drainSignal(c.changed)

	c.receive(encodeLeave("x", 9)) // from an earlier incarnation
	if _, ok := c.table.reports["x"]; !ok {
		t.Fatal("leave with a lower seq dropped the report")
	}
	c.receive(encodeLeave("x", 10))
	if _, ok := c.table.reports["x"]; ok {
		t.Fatal("leave did not drop the report")
	}
	select {
	case <-c.changed:
	default:
		t.Error("leave did not signal Changed")
	}
	// memberlist's death notice that follows keeps "left".
	c.memberEvent(memberlistNode{Name: "x", Meta: mustMeta(t, "s", "h")}.node(), MemberDead)
	ms := c.Members()
	if len(ms) != 1 || ms[0].State != MemberLeft {
		t.Errorf("Members() = %+v, want x left", ms)
	}
	// A late heartbeat of the departed incarnation stays out.
	c.applyReport(reportMsg{report: health.Report{Origin: "x", Seq: 10}}, now)
	if len(c.Reports()) != 0 {
		t.Error("late heartbeat brought the report back")
	}
}

func TestChangedNotOnRefresh(t *testing.T) {
	c := newBare(t)
	now := time.Now()
	r := health.Report{Origin: "x", Seq: 1, Targets: map[string]health.State{"t": health.Up}}
	c.applyReport(reportMsg{report: r}, now)
	drainSignal(c.changed)
	c.applyReport(reportMsg{report: r}, now.Add(time.Millisecond))
	r.Seq = 2
	c.applyReport(reportMsg{report: r}, now.Add(2*time.Millisecond))
	select {
	case <-c.changed:
		t.Error("Changed signalled for a refresh and a new seq with the same content")
	default:
	}
	r.Seq, r.Targets = 3, map[string]health.State{"t": health.Down}
	c.applyReport(reportMsg{report: r}, now.Add(3*time.Millisecond))
	select {
	case <-c.changed:
	default:
		t.Error("Changed not signalled for a content change")
	}
}

func FuzzReceive(f *testing.F) {
	f.Add(encodeReport(health.Report{Origin: "x", Seq: 1, Targets: map[string]health.State{"t": 1}}, 0, 0))
	f.Add(encodeLeave("x", 1))
	f.Add(appendBeat(beatsHeader("y"), beatEntry{origin: "x", seq: 1, beat: 1, age: time.Millisecond}))
	f.Add(encodeWant("y", []string{"x"}))
	f.Add([]byte{byte(kindState)})
	f.Add(appendStateFrame([]byte{byte(kindState)}, encodeLeave("x", 1)))
	f.Add([]byte{})
	c := newBare(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c.receive(b)
		c.mergeState(b)
	})
}
