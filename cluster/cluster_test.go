package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/health"
)

// The tests in this file run real memberlist instances on 127.0.0.1 with
// ports picked by the kernel, several per test, and wait by polling with a
// deadline. They run in parallel: the slow ones wait on memberlist's
// failure detector.

// testNode is a Cluster started with Run, stopped in t.Cleanup.
type testNode struct {
	*Cluster
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startNode creates and runs a node. Unset fields get test values: bind
// 127.0.0.1:0, site "site-<name>", config hash "h1".
func startNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	if cfg.Site == "" {
		cfg.Site = "site-" + cfg.Name
	}
	if cfg.ConfigHash == "" {
		cfg.ConfigHash = "h1"
	}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, testLogger(t).With("node", cfg.Name), reg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{Cluster: c, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop ends Run gracefully (leave, then shutdown) and waits for it.
func (n *testNode) stop(t *testing.T) {
	t.Helper()
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				t.Errorf("Run(%s) = %v, want nil", n.cfg.Name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run(%s) did not return within 10s of cancel", n.cfg.Name)
		}
	})
}

// kill stops the node as a crash would: no leave message, no memberlist
// Leave, sockets closed.
func (n *testNode) kill(t *testing.T) {
	t.Helper()
	n.skipLeave.Store(true)
	n.stop(t)
}

// seed returns the node's gossip address for other nodes' Seeds.
func (n *testNode) seed() []string { return []string{n.Addr().String()} }

// waitFor polls cond until it returns nil, failing the test if that takes
// longer than within. It returns how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		<-tick.C
	}
}

// report returns origin's report as n holds it.
func (n *testNode) report(origin string) (health.Received, bool) {
	for _, r := range n.Reports() {
		if r.Origin == origin {
			return r, true
		}
	}
	return health.Received{}, false
}

// member returns n's view of the member called name.
func (n *testNode) member(name string) (Member, bool) {
	for _, m := range n.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// hasTargets fails unless n holds a report from origin with targets.
func (n *testNode) hasTargets(origin string, targets map[string]health.State) error {
	r, ok := n.report(origin)
	if !ok {
		return fmt.Errorf("%s has no report from %s", n.cfg.Name, origin)
	}
	if !maps.Equal(r.Targets, targets) {
		return fmt.Errorf("%s holds %s's targets %v, want %v", n.cfg.Name, origin, r.Targets, targets)
	}
	return nil
}

// allAlive fails unless n sees exactly names, all alive.
func (n *testNode) allAlive(names ...string) error {
	ms := n.Members()
	var got []string
	for _, m := range ms {
		if m.State != MemberAlive {
			return fmt.Errorf("%s sees %s as %s", n.cfg.Name, m.Name, m.State)
		}
		got = append(got, m.Name)
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		return fmt.Errorf("%s sees members %v, want %v", n.cfg.Name, got, names)
	}
	return nil
}

func targetsOf(name string, s health.State) map[string]health.State {
	return map[string]health.State{"web/" + name + "/192.0.2.1": s, "web/" + name + "/192.0.2.2": health.Up}
}

// startThree starts a, b and c (b and c join through a), has each
// announce, and waits until every node holds the other two reports.
func startThree(t *testing.T, mod func(*Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for _, name := range []string{"a", "b", "c"} {
		cfg := Config{Name: name}
		if len(nodes) > 0 {
			cfg.Seeds = nodes[0].seed()
		}
		if mod != nil {
			mod(&cfg)
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	for _, n := range nodes {
		n.Announce(health.Report{Ready: true, Targets: targetsOf(n.cfg.Name, health.Up)})
	}
	waitFor(t, 5*time.Second, "three nodes converge", func() error {
		for _, n := range nodes {
			if err := n.allAlive("a", "b", "c"); err != nil {
				return err
			}
			for _, o := range nodes {
				if o == n {
					continue
				}
				if err := n.hasTargets(o.cfg.Name, targetsOf(o.cfg.Name, health.Up)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return nodes
}

func TestConverge(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, nil)
	for _, n := range nodes {
		for _, r := range n.Reports() {
			if r.Origin == n.cfg.Name {
				t.Errorf("%s.Reports() includes its own report", n.cfg.Name)
			}
			if r.Site != "site-"+r.Origin || r.ConfigHash != "h1" || !r.Ready || r.Seq == 0 {
				t.Errorf("%s holds %+v, want site, config hash, ready and seq set by the origin", n.cfg.Name, r.Report)
			}
		}
		for _, m := range n.Members() {
			if m.Site != "site-"+m.Name || !m.SameConfig || !m.Addr.IsValid() {
				t.Errorf("%s.Members() has %+v", n.cfg.Name, m)
			}
		}
	}
}

func TestAnnouncePropagates(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, nil)
	a := nodes[0]
	for i := range 3 {
		// Alternate so every round is a content change.
		s := health.Down
		if i%2 == 1 {
			s = health.Up
		}
		for _, n := range nodes[1:] {
			drainSignal(n.Changed())
		}
		a.Announce(health.Report{Ready: true, Targets: targetsOf("a", s)})
		took := waitFor(t, 5*time.Second, "announce reaches b and c", func() error {
			return errors.Join(nodes[1].hasTargets("a", targetsOf("a", s)), nodes[2].hasTargets("a", targetsOf("a", s)))
		})
		t.Logf("round %d: announce reached every peer in %v", i, took)
		for _, n := range nodes[1:] {
			select {
			case <-n.Changed():
			default:
				t.Errorf("%s: Changed not signalled for a content change", n.cfg.Name)
			}
		}
	}
}

// TestHeartbeatRefreshes: over real gossip, heartbeats refresh a peer's
// report (At moves) without a new Seq. That a refresh of a fresh report
// does not signal Changed is checked without the network, in
// TestStaleReportRevivalSignals: here memberlist's own membership events
// may signal at any time on a loaded machine.
func TestHeartbeatRefreshes(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, nil)
	b := nodes[1]
	before, _ := b.report("a")
	waitFor(t, 5*time.Second, "heartbeat refreshes At", func() error {
		r, ok := b.report("a")
		if !ok || !r.At.After(before.At) {
			return errors.New("a's report not refreshed at b")
		}
		if r.Seq != before.Seq {
			return fmt.Errorf("seq moved from %d to %d without an Announce", before.Seq, r.Seq)
		}
		return nil
	})
}

func TestLateJoinerGetsStateByPushPull(t *testing.T) {
	t.Parallel()
	// a and b hold each other's reports. b crashes; c joins through a at
	// once. Only a's push/pull can give c b's report, and it must arrive
	// with its age: At no later than b's last heartbeat at a.
	a := startNode(t, Config{Name: "a"})
	b := startNode(t, Config{Name: "b", Seeds: a.seed()})
	a.Announce(health.Report{Targets: targetsOf("a", health.Up)})
	b.Announce(health.Report{Targets: targetsOf("b", health.Down)})
	waitFor(t, 5*time.Second, "a and b converge", func() error {
		return errors.Join(a.hasTargets("b", targetsOf("b", health.Down)), b.hasTargets("a", targetsOf("a", health.Up)))
	})
	b.kill(t)
	killed := time.Now()
	// Let b's report age at a well beyond the transfer time of a
	// push/pull, but not so long that a declares b dead and drops it.
	const aged = 300 * time.Millisecond
	waitFor(t, time.Second, "b's report ages at a", func() error {
		if r, _ := a.report("b"); time.Since(r.At) < aged {
			return fmt.Errorf("b's report at a is only %v old", time.Since(r.At))
		}
		return nil
	})

	c := startNode(t, Config{Name: "c", Seeds: a.seed()})
	waitFor(t, 5*time.Second, "c receives a's and b's reports", func() error {
		return errors.Join(c.hasTargets("a", targetsOf("a", health.Up)), c.hasTargets("b", targetsOf("b", health.Down)))
	})
	// Had push/pull not carried the age, At would be c's receive time,
	// more than aged after the kill.
	if r, _ := c.report("b"); r.At.After(killed.Add(aged / 2)) {
		t.Errorf("c holds b's report with At %v, %v after b was killed: push/pull lost its age", r.At, r.At.Sub(killed))
	}
}

func TestGracefulLeaveDropsReport(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	drainSignal(a.Changed())
	stopped := time.Now()
	c.stop(t)
	took := waitFor(t, 5*time.Second, "c's report dropped and c shown as left", func() error {
		for _, n := range []*testNode{a, b} {
			if _, ok := n.report("c"); ok {
				return fmt.Errorf("%s still holds c's report", n.cfg.Name)
			}
			if m, _ := n.member("c"); m.State != MemberLeft {
				return fmt.Errorf("%s sees c as %q", n.cfg.Name, m.State)
			}
		}
		return nil
	})
	t.Logf("c's report dropped %v after Run returned (%v after stop began)", took, time.Since(stopped))
	select {
	case <-a.Changed():
	default:
		t.Error("a: Changed not signalled for c's departure")
	}
}

func TestKilledNodeAgesAndDies(t *testing.T) {
	t.Parallel()
	nodes := startThree(t, nil)
	a, c := nodes[0], nodes[2]
	c.kill(t)
	killed := time.Now()
	// Heartbeats stop: within Staleness plus a little, a's copy of c's
	// report is stale (or already gone) and c shows as suspect.
	waitFor(t, 3*time.Second, "c's report goes stale at a", func() error {
		r, ok := a.report("c")
		if ok && time.Since(r.At) <= a.cfg.Staleness {
			return fmt.Errorf("c's report refreshed %v ago", time.Since(r.At))
		}
		if m, _ := a.member("c"); m.State == MemberAlive {
			return errors.New("c still alive")
		}
		return nil
	})
	t.Logf("c stale at a %v after the kill", time.Since(killed))
	// Then memberlist's failure detector declares it dead and the report
	// goes at once, long before the 10*Staleness bound would drop it.
	took := waitFor(t, 8*time.Second, "c declared dead at a", func() error {
		if m, _ := a.member("c"); m.State != MemberDead {
			return fmt.Errorf("a sees c as %q", m.State)
		}
		if _, ok := a.report("c"); ok {
			return errors.New("a still holds c's report")
		}
		return nil
	})
	t.Logf("c dead at a %v after the kill (%v after it went stale)", time.Since(killed), took)
}

func TestUnreachableSeedRetried(t *testing.T) {
	t.Parallel()
	seedAddr := reserveAddr(t)
	b := startNode(t, Config{Name: "b", Seeds: []string{seedAddr}, RetryInterval: 20 * time.Millisecond})
	b.Announce(health.Report{Targets: targetsOf("b", health.Up)})
	waitFor(t, 5*time.Second, "b fails to join twice", func() error {
		if n := testutil.ToFloat64(b.metrics.joins.WithLabelValues(joinFailure)); n < 2 {
			return fmt.Errorf("%v failed joins", n)
		}
		return b.allAlive("b")
	})

	a := startNode(t, Config{Name: "a", Bind: seedAddr})
	a.Announce(health.Report{Targets: targetsOf("a", health.Up)})
	waitFor(t, 5*time.Second, "b joins a once a is up", func() error {
		return errors.Join(b.allAlive("a", "b"), b.hasTargets("a", targetsOf("a", health.Up)), a.hasTargets("b", targetsOf("b", health.Up)))
	})
	// The join call returns (and is counted) a moment after the members
	// see each other.
	waitFor(t, 5*time.Second, "b counts its successful join", func() error {
		if n := testutil.ToFloat64(b.metrics.joins.WithLabelValues(joinSuccess)); n != 1 {
			return fmt.Errorf("join_attempts_total{result=success} = %v, want 1", n)
		}
		return nil
	})
}

func TestGarbageMessagesCounted(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{Name: "a"})
	b := startNode(t, Config{Name: "b", Seeds: a.seed()})
	waitFor(t, 5*time.Second, "a and b see each other", func() error {
		return errors.Join(a.allAlive("a", "b"), b.allAlive("a", "b"))
	})
	garbage := [][]byte{
		{0},
		{99, 1, 2, 3},
		{byte(kindReport)},
		[]byte("\x01{not json"),
		[]byte("\x01" + `{"origin":"x","seq":1} trailing`),
		[]byte("\x01" + `{"origin":"","seq":1}`),
		[]byte("\x01" + `{"origin":"x","seq":0}`),
		[]byte("\x01" + `{"origin":"x","seq":1,"targets":{"t":7}}`),
		[]byte("\x01" + `{"origin":"x","seq":1,"age_ms":-5}`),
		[]byte("\x02" + `{"seq":1}`),
		{byte(kindState), 0xff, 0xff},
	}
	// Over TCP, so none is lost; memberlist does not deliver empty
	// messages, so that case and push/pull states are fed in directly.
	peer := a.peer(t, "b")
	for _, g := range garbage {
		if err := a.ml.SendReliable(peer, g); err != nil {
			t.Fatalf("send garbage: %v", err)
		}
	}
	b.receive(nil)
	b.mergeState([]byte{byte(kindReport)})
	b.mergeState([]byte{byte(kindState), 5, byte(kindReport)})
	want := float64(len(garbage) + 3)
	waitFor(t, 5*time.Second, "garbage counted", func() error {
		if got := testutil.ToFloat64(b.metrics.bad); got != want {
			return fmt.Errorf("bad_messages_total = %v, want %v", got, want)
		}
		return nil
	})
	if rs := b.Reports(); len(rs) != 0 {
		t.Errorf("b.Reports() = %v after garbage, want none", rs)
	}
	// Still works.
	a.Announce(health.Report{Targets: targetsOf("a", health.Up)})
	waitFor(t, 5*time.Second, "a's report reaches b", func() error { return b.hasTargets("a", targetsOf("a", health.Up)) })
}

func TestConfigMismatchVisible(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{Name: "a", ConfigHash: "h1"})
	b := startNode(t, Config{Name: "b", ConfigHash: "h2", Seeds: a.seed()})
	b.Announce(health.Report{Targets: targetsOf("b", health.Up)})
	waitFor(t, 5*time.Second, "a sees b's other config", func() error {
		m, ok := a.member("b")
		if !ok || m.SameConfig || m.ConfigHash != "h2" {
			return fmt.Errorf("a sees b as %+v", m)
		}
		r, ok := a.report("b")
		if !ok || r.ConfigHash != "h2" {
			return fmt.Errorf("a holds b's report %+v, want it stored with hash h2", r.Report)
		}
		return nil
	})
	want := `# HELP gslb_cluster_config_mismatch Alive or suspect peers whose config hash differs from this node's.
# TYPE gslb_cluster_config_mismatch gauge
gslb_cluster_config_mismatch 1
`
	if err := testutil.GatherAndCompare(a.reg, strings.NewReader(want), "gslb_cluster_config_mismatch"); err != nil {
		t.Error(err)
	}
	if m, _ := a.member("a"); !m.SameConfig {
		t.Errorf("a sees itself as %+v, want SameConfig", m)
	}
}

func TestEncryptedGossip(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef")
	a := startNode(t, Config{Name: "a", Keys: [][]byte{key}})
	b := startNode(t, Config{Name: "b", Keys: [][]byte{key}, Seeds: a.seed()})
	a.Announce(health.Report{Targets: targetsOf("a", health.Up)})
	waitFor(t, 5*time.Second, "b receives a's report", func() error { return b.hasTargets("a", targetsOf("a", health.Up)) })

	c := startNode(t, Config{Name: "c", Keys: [][]byte{[]byte("fedcba9876543210")}, Seeds: a.seed(), RetryInterval: 20 * time.Millisecond})
	waitFor(t, 5*time.Second, "c with another key fails to join", func() error {
		if n := testutil.ToFloat64(c.metrics.joins.WithLabelValues(joinFailure)); n < 1 {
			return errors.New("no failed join yet")
		}
		return nil
	})
	if err := c.allAlive("c"); err != nil {
		t.Error(err)
	}
}

func TestLargeReportGoesOverTCP(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{Name: "a"})
	b := startNode(t, Config{Name: "b", Seeds: a.seed()})
	waitFor(t, 5*time.Second, "a and b see each other", func() error { return a.allAlive("a", "b") })
	big := map[string]health.State{}
	for i := range 200 {
		big[fmt.Sprintf("pool-%03d/dc/198.51.100.%d", i, i%250)] = health.Up
	}
	if n := len(encodeReport(health.Report{Origin: "a", Seq: 1, Targets: big}, 0, 0)); n <= maxPacket {
		t.Fatalf("test report is %d bytes, want more than %d", n, maxPacket)
	}
	a.Announce(health.Report{Targets: big})
	took := waitFor(t, 5*time.Second, "large report reaches b", func() error { return b.hasTargets("a", big) })
	t.Logf("%d-target report reached b in %v", len(big), took)
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{Name: "a"})
	waitFor(t, 5*time.Second, "Run started", func() error {
		if !a.running.Load() {
			return errors.New("not running")
		}
		return nil
	})
	if err := a.Run(context.Background()); !errors.Is(err, errRunTwice) {
		t.Errorf("second Run = %v, want %v", err, errRunTwice)
	}
}

func TestMetricsLint(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{Name: "a"})
	problems, err := testutil.GatherAndLint(a.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	want := `# HELP gslb_cluster_members Cluster members as this node sees them (itself included), by state: alive, suspect (no heartbeat within the staleness bound), dead or left.
# TYPE gslb_cluster_members gauge
gslb_cluster_members{state="alive"} 1
gslb_cluster_members{state="dead"} 0
gslb_cluster_members{state="left"} 0
gslb_cluster_members{state="suspect"} 0
`
	if err := testutil.GatherAndCompare(a.reg, strings.NewReader(want), "gslb_cluster_members"); err != nil {
		t.Error(err)
	}
}

// peer returns a memberlist node for name as n knows it, for raw sends.
func (n *testNode) peer(t *testing.T, name string) *memberlist.Node {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.members[name]
	if !ok {
		t.Fatalf("%s does not know %s", n.cfg.Name, name)
	}
	node := m.node
	return &node
}

// reserveAddr returns a 127.0.0.1 address whose port was free for both
// TCP and UDP a moment ago, for a node that must start later at an
// address known in advance.
func reserveAddr(t *testing.T) string {
	t.Helper()
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}

func drainSignal(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// testLogger logs to t's output until the test ends. memberlist may log
// from its own goroutines a moment after a node is shut down; those lines
// are discarded instead of panicking the test binary.
func testLogger(t *testing.T) *slog.Logger {
	w := &guardedWriter{w: t.Output()}
	t.Cleanup(w.close) // registered before the nodes' cleanups, so it runs after them
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type guardedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *guardedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func TestSeedThatIsSelfIsNotAJoin(t *testing.T) {
	t.Parallel()
	addr := reserveAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	a := startNode(t, Config{Name: "a", Bind: addr, Seeds: []string{"localhost:" + port}, RetryInterval: 20 * time.Millisecond})
	waitFor(t, 5*time.Second, "join through itself counted as a failure", func() error {
		if n := testutil.ToFloat64(a.metrics.joins.WithLabelValues(joinFailure)); n < 2 {
			return fmt.Errorf("%v failed joins", n)
		}
		return nil
	})
	if n := testutil.ToFloat64(a.metrics.joins.WithLabelValues(joinSuccess)); n != 0 {
		t.Errorf("join_attempts_total{result=success} = %v, want 0 for a seed that is the node itself", n)
	}
}

// TestStaleReportRevivalSignals: a peer's report that went stale (its
// heartbeats were lost for a while) and is then refreshed with the same
// content signals Changed, so the consumer counts it again at once.
func TestStaleReportRevivalSignals(t *testing.T) {
	n := startNode(t, Config{Name: "a"})
	drainSignal(n.Changed())
	r := health.Report{Origin: "b", Site: "site-b", Seq: 7, ConfigHash: "h1", Ready: true,
		Targets: map[string]health.State{"x": health.Up}}
	now := time.Now()
	n.applyReport(reportMsg{report: r}, now)
	if !signalled(n.Changed()) {
		t.Fatal("a new origin's report did not signal Changed")
	}
	// A heartbeat within the staleness bound refreshes without a signal.
	n.applyReport(reportMsg{report: r}, now.Add(n.cfg.Heartbeat))
	if signalled(n.Changed()) {
		t.Error("a heartbeat of a fresh report signalled Changed")
	}
	// Silence longer than the staleness bound, then the same report again.
	n.applyReport(reportMsg{report: r}, now.Add(n.cfg.Heartbeat+n.cfg.Staleness+time.Millisecond))
	if !signalled(n.Changed()) {
		t.Error("a stale report refreshed again did not signal Changed")
	}
}

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestSetConfigHash: after a reload changes the service definitions, peers
// see the new hash in the node meta, and Members compares against it.
func TestSetConfigHash(t *testing.T) {
	a := startNode(t, Config{Name: "a"})
	b := startNode(t, Config{Name: "b", Seeds: []string{a.Addr().String()}})
	bSame := func(want bool) func() error {
		return func() error {
			for _, m := range a.Members() {
				if m.Name == "b" {
					if m.SameConfig != want {
						return fmt.Errorf("b has config %s, SameConfig %v", m.ConfigHash, m.SameConfig)
					}
					return nil
				}
			}
			return errors.New("b not a member")
		}
	}
	waitFor(t, 10*time.Second, "a sees b with the same config", bSame(true))
	if err := b.SetConfigHash("h2"); err != nil {
		t.Fatalf("SetConfigHash: %v", err)
	}
	waitFor(t, 10*time.Second, "a sees b's new config hash", bSame(false))
	if err := a.SetConfigHash("h2"); err != nil {
		t.Fatalf("SetConfigHash: %v", err)
	}
	waitFor(t, 10*time.Second, "a and b agree again", bSame(true))
}
