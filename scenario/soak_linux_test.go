package scenario

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/dnstest"
)

var (
	soakFor = flag.Duration("scenario.soak", envDuration("GSLBD_SCENARIO_SOAK", 0),
		"run TestSoak for this long under faults, then as long again under a WAN (-scenario.wanloss, -scenario.wandelay) (on demand, as root; 0: skipped)")
	soakRate = flag.Int("scenario.soakrate", envInt("GSLBD_SCENARIO_SOAKRATE", 0),
		"TestSoak's query rate, per second over all nodes (0: half the maximum a short dnsperf run measures against one node)")
)

const (
	// soakCycle is one round of faults: dc1 killed and restored, then
	// drained and undrained.
	soakCycle = time.Minute
	// Offsets within a cycle.
	soakRestoreAt = 20 * time.Second
	soakDrainAt   = 35 * time.Second
	soakUndrainAt = 50 * time.Second
	// soakTimeout is dnsperf's query timeout: a query not answered within
	// it counts as lost.
	soakTimeout = 5
)

// soakQueries is dnsperf's query file: the service twice over, and the
// zone's static names.
const soakQueries = `talk.example.com A
talk.example.com A
example.com SOA
example.com NS
ns1.example.com A
ns2.example.com A
`

// TestSoak (on demand: -scenario.soak=10m, as root) runs the
// network-namespace cluster of TestNetworkFaults under steady dnsperf load
// from the client namespace while faults come and go, then under a lossy, slow
// WAN; see scenario/doc.go. It fails on any SERVFAIL, on more lost queries
// at the nodes that stayed up than an idle cluster loses, on an answer
// naming a dead or drained site later than the detection bound, on a node
// whose resident memory doubled, and on any answer change under the WAN
// (and where the delay line did not add the delay: see wanRun.check).
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("skipped: the soak runs on demand: go test ./scenario -run TestSoak -v -count=1 -scenario.soak=10m -timeout 40m (as root)")
	}
	requireLab(t)
	dig := requireDig(t)
	dnsperf := dnstest.RequireTool(t, "dnsperf", "dnsperf")
	cycles := max(int(*soakFor/soakCycle), 1)
	d := time.Duration(cycles) * soakCycle
	baseFor := min(max(d/10, 10*time.Second), time.Minute)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < 2*d+baseFor+5*time.Minute {
		t.Fatalf("-timeout too short for -scenario.soak=%s: give it at least %s", *soakFor, (2*d + baseFor + 5*time.Minute).Round(time.Minute))
	}
	bin := gslbdBinary(t)
	lab := newNetLab(t, netClientIP, labSites(netThreeSites))
	h := newHarnessIn(t, bin, dig, netThreeSites, lab)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	queries := filepath.Join(h.dir, "queries.txt")
	must(os.WriteFile(queries, []byte(soakQueries), 0o644))
	perf := &perfRunner{h: h, bin: dnsperf, queries: queries}
	// Every dnsperf ends by its own time limit or with the test's context;
	// the namespaces go only once they have.
	t.Cleanup(perf.wg.Wait)

	h.startAll(t, ctx)
	names := make([]string, len(h.nodes))
	for i, n := range h.nodes {
		names[i] = n.name
	}
	mem := newMemLog(names)
	mem.sample(h, "started")

	// The rate: half what one node answers flat out, or as configured.
	rate, maxRate := *soakRate, 0.0
	if rate <= 0 {
		r := perf.run(ctx, h.nodes[:1], 0, 5*time.Second)[0]
		if r.err != nil || r.qps <= 0 {
			t.Fatalf("measuring the maximum rate against %s: %v (qps %.0f)", h.nodes[0].name, r.err, r.qps)
		}
		maxRate = r.qps
		rate = int(maxRate / 2)
	}
	perNode := max(rate/len(h.nodes), 1)

	// Idle baseline: the same load, nothing failing.
	spaces := []string{"client", "dc1", "dc2", "dc3"}
	drops := newDropLog(spaces)
	drops.sample(ctx, h, "baseline")
	base := perf.run(ctx, h.nodes, perNode, baseFor)
	drops.sample(ctx, h, "soak")
	baseLoss := lossOf(base)
	mem.sample(h, "soak start")

	// The soak: faults every cycle, dnsperf and one dig poller per node
	// throughout.
	stats := &digStats{}
	dc1Nodes, dc1Eps := h.sitesOf("dc1")
	var survivors []*node
	for _, n := range h.nodes {
		if n.site != "dc1" {
			survivors = append(survivors, n)
		}
	}
	perfDone := perf.start(ctx, h.nodes, perNode, d)
	rec := h.startRecording(ctx, h.nodes, stats)
	t0 := time.Now()
	var kills, restores, drains, undrains []time.Time
	for c := range cycles {
		c0 := t0.Add(time.Duration(c) * soakCycle)
		hold(ctx, time.Until(c0))
		kills = append(kills, time.Now())
		must(lab.wire(blackHole("dc1")...))
		_, ps := h.kill(dc1Nodes, dc1Eps)
		reap(ps)

		hold(ctx, time.Until(c0.Add(soakRestoreAt)))
		restores = append(restores, time.Now())
		must(lab.wire())
		_, err := h.startEndpoints(dc1Eps)
		must(err)
		_, err = h.startNodes(dc1Nodes)
		must(err)

		// Drained through one node, undrained through the next, turn
		// about, so that every node takes writes.
		hold(ctx, time.Until(c0.Add(soakDrainAt)))
		id, err := h.drainSite(ctx, h.nodes[(2*c)%len(h.nodes)], "dc1", fmt.Sprintf("soak %d", c+1))
		must(err)
		drains = append(drains, time.Now())
		hold(ctx, time.Until(c0.Add(soakUndrainAt)))
		undrains = append(undrains, time.Now())
		must(h.undrain(ctx, h.nodes[(2*c+1)%len(h.nodes)], id, fmt.Sprintf("soak %d over", c+1)))
		for _, n := range survivors {
			mem.sample1(n, fmt.Sprintf("cycle %d", c+1))
		}
	}
	hold(ctx, time.Until(t0.Add(d)))
	all := rec.finish()
	soak := perfDone()
	must(ctx.Err())
	drops.sample(ctx, h, "settle")
	mem.sample(h, "soak end")

	// What the pollers saw.
	bound := 5 * time.Second
	if *strict {
		bound = 3 * time.Second
	}
	res := newResults(kindSoakKilledOut, kindSoakKilledBack, kindSoakDrainedOut, kindSoakUndrainedBack)
	var late []string
	for c := range cycles {
		next := t0.Add(time.Duration(c+1) * soakCycle)
		h.soakPhase(res, kindSoakKilledOut, all, survivors, h.noSite("dc1"), kills[c], restores[c])
		late = append(late, h.lateAnswers(all, survivors, "dc1", "killed", kills[c].Add(bound), restores[c])...)
		h.soakPhase(res, kindSoakKilledBack, all, h.nodes, h.steady("dc1"), restores[c], drains[c])
		h.soakPhase(res, kindSoakDrainedOut, all, h.nodes, h.noSite("dc1"), drains[c], undrains[c])
		late = append(late, h.lateAnswers(all, h.nodes, "dc1", "drained", drains[c].Add(bound), undrains[c])...)
		h.soakPhase(res, kindSoakUndrainedBack, all, h.nodes, h.steady("dc1"), undrains[c], next)
	}
	digErrs := map[string]int{}
	for _, n := range survivors {
		for _, a := range all[n.name] {
			if a.err != nil {
				digErrs[n.name]++
			}
		}
	}
	var surviving []perfResult
	for _, r := range soak {
		if r.node.site != "dc1" {
			surviving = append(surviving, r)
		}
	}

	// The WAN: loss and delay on every inter-site link, nothing failing,
	// the same load.
	h.settle(ctx, "the soak")
	mem.sample(h, "wan start")
	drops.sample(ctx, h, "wan")
	wanDone := perf.start(ctx, h.nodes, perNode, d)
	w := h.wanPhase(ctx, lab, *wanLoss, *wanDelay, d, stats)
	wan := wanDone()
	must(ctx.Err())
	drops.sample(ctx, h, "")
	mem.sample(h, "wan end")

	var b strings.Builder
	ds := summarize(stats.durs)
	fmt.Fprintf(&b, "soak: %d cycles of %s (dc1 black-holed and SIGKILLed at 0s, restored at %s, drained at %s, undrained at %s), then %s of WAN: %s\n",
		cycles, soakCycle, soakRestoreAt, soakDrainAt, soakUndrainAt, d, w.how)
	if maxRate > 0 {
		fmt.Fprintf(&b, "rate: %d queries/s over %d nodes (%d each): half of %.0f/s measured against %s alone\n", perNode*len(h.nodes), len(h.nodes), perNode, maxRate, h.nodes[0].name)
	} else {
		fmt.Fprintf(&b, "rate: %d queries/s over %d nodes (%d each), as configured\n", perNode*len(h.nodes), len(h.nodes), perNode)
	}
	fmt.Fprintf(&b, "dig pollers: %d runs, median %ss, p99 %ss; detection bound %s\n", stats.count, secs(ds.median), secs(ds.p99), bound)
	b.WriteString(perfTable(fmt.Sprintf("idle baseline, %s", baseFor), base))
	b.WriteString(perfTable(fmt.Sprintf("soak, %s (dc1's nodes are dead for %s of every %s: their queries in that time are lost)", d, soakRestoreAt, soakCycle), soak))
	b.WriteString(perfTable(fmt.Sprintf("WAN, %s", d), wan))
	b.WriteString(drops.table())
	b.WriteString(res.table(names))
	fmt.Fprintf(&b, "failed digs at dc2-a, dc3-a during the soak: %v\n", digErrs)
	b.WriteString(mem.table())
	b.WriteString(w.report(h))
	t.Log(b.String())

	// The verdicts.
	for _, rs := range [][]perfResult{base, soak, wan} {
		for _, r := range rs {
			if r.err != nil {
				t.Errorf("dnsperf against %s: %v", r.node.name, r.err)
			}
			if n := r.rcodes["SERVFAIL"]; n > 0 {
				t.Errorf("dnsperf against %s: %d SERVFAIL, want none", r.node.name, n)
			}
		}
	}
	if l := lossOf(surviving); l > baseLoss {
		t.Errorf("queries lost at the nodes that stayed up during the soak: %.4f%%, more than the idle baseline's %.4f%%", 100*l, 100*baseLoss)
	}
	if l := lossOf(wan); l > baseLoss {
		t.Errorf("queries lost under the WAN: %.4f%%, more than the idle baseline's %.4f%% (the client's link is clean)", 100*l, 100*baseLoss)
	}
	if len(late) > 0 {
		t.Errorf("%d answers named dc1 more than %s after it was killed or drained:\n%s", len(late), bound, strings.Join(late[:min(10, len(late))], "\n"))
	}
	for _, n := range survivors {
		if first, last := mem.first(n.name), mem.last(n.name); first > 0 && last > 2*first {
			t.Errorf("%s: resident memory %d kB at the start, %d kB at the end: more than doubled", n.name, first, last)
		}
	}
	w.check(h)
}

// Soak phases, in the order of the table.
const (
	kindSoakKilledOut     = "dc1 killed: out at dc2-a, dc3-a"
	kindSoakKilledBack    = "dc1 restored: back everywhere"
	kindSoakDrainedOut    = "dc1 drained: out everywhere"
	kindSoakUndrainedBack = "dc1 undrained: back everywhere"
)

// soakPhase records, for each node of nodes, the time from t0 to the
// first answer to a dig begun at or after t0 that met cond, and fails the
// test for a node that gave none before until.
func (h *harness) soakPhase(res *results, kind string, all map[string][]answer, nodes []*node, cond condition, t0, until time.Time) {
	times := map[string]time.Duration{}
	for _, n := range nodes {
		i := slices.IndexFunc(all[n.name], func(a answer) bool {
			return !a.start.Before(t0) && a.end.Before(until) && cond.ok(a)
		})
		if i < 0 {
			h.t.Errorf("%s at %s: %s never %s before %s", kind, t0.Format("15:04:05.000"), n.name, cond.name, until.Format("15:04:05.000"))
			continue
		}
		times[n.name] = all[n.name][i].end.Sub(t0)
	}
	res.add(kind, times)
}

// lateAnswers lists the answers of nodes naming site to digs begun at or
// after from and returned before until.
func (h *harness) lateAnswers(all map[string][]answer, nodes []*node, site, why string, from, until time.Time) []string {
	var out []string
	for _, n := range nodes {
		for _, a := range all[n.name] {
			if !a.start.Before(from) && a.end.Before(until) && h.sitesIn(a)[site] {
				out = append(out, fmt.Sprintf("%s answered %s to a dig run from %s to %s, %s %s",
					n.name, a, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000"), site, why))
			}
		}
	}
	return out
}

// perfRunner runs dnsperf in the client namespace.
type perfRunner struct {
	h       *harness
	bin     string
	queries string
	wg      sync.WaitGroup
}

// perfResult is what one dnsperf run reported.
type perfResult struct {
	node                  *node
	sent, completed, lost int
	qps                   float64
	rcodes                map[string]int
	err                   error
}

// start runs one dnsperf per node of nodes for d, at rate queries/s each
// (0: as fast as it can), and returns a function that waits for them.
func (p *perfRunner) start(ctx context.Context, nodes []*node, rate int, d time.Duration) func() []perfResult {
	out := make([]perfResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		p.wg.Add(1)
		wg.Go(func() {
			defer p.wg.Done()
			out[i] = p.one(ctx, n, rate, d)
		})
	}
	return func() []perfResult {
		wg.Wait()
		return out
	}
}

// run is start and wait.
func (p *perfRunner) run(ctx context.Context, nodes []*node, rate int, d time.Duration) []perfResult {
	return p.start(ctx, nodes, rate, d)()
}

var rcodeRE = regexp.MustCompile(`([A-Z]+) (\d+) \(`)

func (p *perfRunner) one(ctx context.Context, n *node, rate int, d time.Duration) perfResult {
	r := perfResult{node: n, rcodes: map[string]int{}}
	args := []string{"-s", n.dns.Addr().String(), "-p", strconv.Itoa(int(n.dns.Port())), "-d", p.queries,
		"-l", strconv.Itoa(int(d.Seconds())), "-t", strconv.Itoa(soakTimeout), "-c", "2", "-q", "200"}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(rate))
	}
	cmd := p.h.command(ctx, "client", p.bin, args...)
	setProcAttr(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.err = err
		return r
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		r.err = err
		return r
	}
	// dnsperf prints a line per timed-out query: read them away, keep the
	// statistics.
	sc := bufio.NewScanner(stdout)
	field := func(line, name string) (int, bool) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name)
		if !ok {
			return 0, false
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.Atoi(f[0])
		return v, err == nil
	}
	var stats []string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[Timeout]") {
			continue
		}
		stats = append(stats, line)
		if v, ok := field(line, "Queries sent:"); ok {
			r.sent = v
		}
		if v, ok := field(line, "Queries completed:"); ok {
			r.completed = v
		}
		if v, ok := field(line, "Queries lost:"); ok {
			r.lost = v
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Response codes:"); ok {
			for _, m := range rcodeRE.FindAllStringSubmatch(rest, -1) {
				r.rcodes[m[1]], _ = strconv.Atoi(m[2])
			}
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Queries per second:"); ok {
			r.qps, _ = strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := cmd.Wait(); err != nil {
		r.err = fmt.Errorf("dnsperf: %v: %s", err, firstLine(stderr.String()))
	} else if r.sent == 0 {
		r.err = fmt.Errorf("dnsperf sent nothing: %s", strings.Join(stats, " / "))
	}
	return r
}

// lossOf is the share of the queries rs sent that were lost.
func lossOf(rs []perfResult) float64 {
	sent, lost := 0, 0
	for _, r := range rs {
		sent += r.sent
		lost += r.lost
	}
	if sent == 0 {
		return 0
	}
	return float64(lost) / float64(sent)
}

func perfTable(title string, rs []perfResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dnsperf, %s\n  %-8s %10s %10s %8s %9s %10s  %s\n", title, "node", "sent", "completed", "lost", "lost %", "queries/s", "response codes")
	for _, r := range rs {
		var codes []string
		for _, c := range slices.Sorted(maps.Keys(r.rcodes)) {
			codes = append(codes, fmt.Sprintf("%s %d", c, r.rcodes[c]))
		}
		pct := 0.0
		if r.sent > 0 {
			pct = 100 * float64(r.lost) / float64(r.sent)
		}
		fmt.Fprintf(&b, "  %-8s %10d %10d %8d %9.4f %10.0f  %s\n", r.node.name, r.sent, r.completed, r.lost, pct, r.qps, strings.Join(codes, ", "))
	}
	return b.String()
}

// memLog keeps the resident memory (VmRSS) of every node process over
// time, in kB.
type memLog struct {
	mu      sync.Mutex
	nodes   []string
	samples map[string][]memSample
}

type memSample struct {
	when string
	pid  int
	kb   int
}

func newMemLog(nodes []string) *memLog {
	return &memLog{nodes: nodes, samples: map[string][]memSample{}}
}

// sample reads every running node's VmRSS.
func (m *memLog) sample(h *harness, when string) {
	for _, n := range h.nodes {
		m.sample1(n, when)
	}
}

func (m *memLog) sample1(n *node, when string) {
	if n.proc == nil {
		return
	}
	pid := n.proc.cmd.Process.Pid
	kb, err := vmRSS(pid)
	if err != nil {
		return // it died meanwhile: the pollers will tell
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples[n.name] = append(m.samples[n.name], memSample{when, pid, kb})
}

// first and last return the first and last sample of node taken from
// the soak's start on, from the same process; 0 if none.
func (m *memLog) first(node string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.samples[node] {
		if s.when == "soak start" {
			return s.kb
		}
	}
	return 0
}

func (m *memLog) last(node string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := m.samples[node]
	if len(ss) == 0 {
		return 0
	}
	return ss[len(ss)-1].kb
}

func (m *memLog) table() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("resident memory (VmRSS, MiB; a new pid is a restarted process)\n")
	for _, n := range m.nodes {
		var parts []string
		pid := 0
		for _, s := range m.samples[n] {
			p := ""
			if s.pid != pid {
				p = fmt.Sprintf(" [pid %d]", s.pid)
				pid = s.pid
			}
			parts = append(parts, fmt.Sprintf("%s %.1f%s", s.when, float64(s.kb)/1024, p))
		}
		fmt.Fprintf(&b, "  %-8s %s\n", n, strings.Join(parts, ", "))
	}
	return b.String()
}

// vmRSS reads the resident set size of pid from /proc, in kB.
func vmRSS(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// dropLog keeps, per network namespace and phase, how many UDP datagrams
// the kernel dropped because a socket's receive buffer was full
// (RcvbufErrors in /proc/net/snmp): in the client's namespace dnsperf's
// and dig's sockets, in a site's its gslbd's.
type dropLog struct {
	spaces []string
	phases []string // the phase each sample begins; "" for the last
	counts []map[string]int
}

func newDropLog(spaces []string) *dropLog { return &dropLog{spaces: spaces} }

func (d *dropLog) sample(ctx context.Context, h *harness, phase string) {
	c := map[string]int{}
	for _, ns := range d.spaces {
		out, err := h.command(ctx, ns, "cat", "/proc/net/snmp").Output()
		if err != nil {
			c[ns] = -1
			continue
		}
		c[ns] = snmpField(string(out), "Udp:", "RcvbufErrors")
	}
	d.phases = append(d.phases, phase)
	d.counts = append(d.counts, c)
}

// snmpField reads one counter of /proc/net/snmp: a header line and a
// value line, both beginning with proto.
func snmpField(snmp, proto, name string) int {
	var head []string
	for line := range strings.Lines(snmp) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		if i := slices.Index(head, name); i > 0 && i < len(f) {
			v, _ := strconv.Atoi(f[i])
			return v
		}
	}
	return -1
}

func (d *dropLog) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "UDP datagrams dropped on a full receive buffer (RcvbufErrors), per namespace\n  %-9s", "phase")
	for _, ns := range d.spaces {
		fmt.Fprintf(&b, " %8s", ns)
	}
	b.WriteString("\n")
	for i := 0; i+1 < len(d.counts); i++ {
		fmt.Fprintf(&b, "  %-9s", d.phases[i])
		for _, ns := range d.spaces {
			fmt.Fprintf(&b, " %8d", d.counts[i+1][ns]-d.counts[i][ns])
		}
		b.WriteString("\n")
	}
	return b.String()
}
