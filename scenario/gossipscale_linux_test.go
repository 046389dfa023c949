package scenario

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/proctest"
	"github.com/miekg/dns"
)

var (
	gossipScale = flag.String("scenario.gossipscale", "",
		"comma-separated cluster sizes for TestGossipScale (e.g. 3,10,30); empty skips it")
	gossipIdle = flag.Duration("scenario.gossipidle", 20*time.Second,
		"how long TestGossipScale measures an idle cluster")
	debugTrials  = flag.Bool("scenario.gossipdebug", false, "TestGossipScale shows the log of a node that logged no verdict of its own in a trial")
	gossipTrials = flag.Int("scenario.gossiptrials", 1,
		"how many failovers of the first site TestGossipScale measures per cluster size (at most 50)")
)

// scaleLayout is n nodes in max(3, min(10, n/3)) sites, one network
// namespace per node, and one endpoint per site (in the namespace of the
// site's first node). Node j of site i is s<i>-<j> at 10.0.<i>.<j>; the
// endpoint of site i is 10.0.<i>.200.
func scaleLayout(n int) layout {
	sites := max(3, min(10, n/3))
	lay := layout{ns: map[string]string{}}
	for k := range n {
		i, j := k%sites+1, k/sites+1
		name := fmt.Sprintf("s%d-%d", i, j)
		ip := fmt.Sprintf("10.0.%d.%d", i, j)
		lay.nodes = append(lay.nodes, struct{ name, site, ip string }{name, fmt.Sprintf("s%d", i), ip})
		lay.ns[ip] = name
	}
	for i := 1; i <= sites; i++ {
		ip := fmt.Sprintf("10.0.%d.200", i)
		lay.endpoints = append(lay.endpoints, struct{ site, ip string }{fmt.Sprintf("s%d", i), ip})
		lay.ns[ip] = fmt.Sprintf("s%d-1", i)
	}
	return lay
}

// labSpaces returns each namespace's addresses.
func labSpaces(lay layout) map[string][]string {
	out := map[string][]string{}
	for _, n := range lay.nodes {
		out[lay.nsOf(n.site, n.ip)] = append(out[lay.nsOf(n.site, n.ip)], n.ip)
	}
	for _, e := range lay.endpoints {
		out[lay.nsOf(e.site, e.ip)] = append(out[lay.nsOf(e.site, e.ip)], e.ip)
	}
	return out
}

// TestGossipScale measures, for each cluster size of -scenario.gossipscale,
// what gossip costs each node of an idle cluster (bytes and packets per
// second on the gossip port, counted by nftables, and on its whole
// interface, health probes included, each node being in a network
// namespace of its own; and its CPU from /proc, probes included) and how long a site's failover takes: site
// s1 black-holed and its processes killed, time until every surviving
// node answers without s1 (polled with a DNS client over UDP from the
// client namespace every 20ms, not dig, whose start-up would dwarf the
// figure with 30 pollers on two cores). On demand only:
//
//	go test ./scenario -run TestGossipScale -v -count=1 -scenario.gossipscale=3,10,30 -timeout 30m
//
// With -scenario.gossiptrials=N each cluster fails its first site over N
// times (see failoverTrials) and the failover column is the p99 of the
// trials.
func TestGossipScale(t *testing.T) {
	if *gossipScale == "" {
		t.Skip("skipped: on demand, with -scenario.gossipscale=3,10,30")
	}
	if *gossipTrials < 1 || *gossipTrials > 50 {
		t.Fatalf("-scenario.gossiptrials=%d: want 1 to 50", *gossipTrials)
	}
	requireLab(t)
	bin := gslbdBinary(t)
	var sizes []int
	for _, f := range strings.Split(*gossipScale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 {
			t.Fatalf("-scenario.gossipscale: %q is not a size of at least 3", f)
		}
		sizes = append(sizes, n)
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%6s %6s %10s %10s %10s %10s %10s %10s %10s %10s %9s %10s\n", "nodes", "sites",
		"gossip tx", "B/s pkt/s", "gossip rx", "B/s pkt/s", "all tx", "B/s pkt/s", "all rx", "B/s pkt/s", "CPU %core", "failover s")
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			line := measureScale(t, bin, n)
			report.WriteString(line)
		})
	}
	t.Logf("gossip at scale, per node (mean over nodes; idle %s; failover: slowest surviving node)\n%s", *gossipIdle, report.String())
}

func measureScale(t *testing.T, bin string, n int) string {
	lay := scaleLayout(n)
	spaces := labSpaces(lay)
	lab := newNetLab(t, netClientIP, spaces)
	spaces["client"] = []string{netClientIP}
	lab.staticNeighbours(spaces)
	h := newHarnessIn(t, bin, "", lay, lab)
	ctx := t.Context()
	if _, err := h.startEndpoints(h.eps); err != nil {
		t.Fatal(err)
	}
	if _, err := h.startNodes(h.nodes); err != nil {
		t.Fatal(err)
	}
	first := h.eps[0].site
	if err := h.dnsPoll(ctx, lab, h.nodes, h.steady(first)); err != nil {
		t.Fatal(err)
	}
	// Tens of processes starting at once on a small machine take longer
	// than waitBound to settle: starved at start (seconds to load their
	// configuration), they miss memberlist's probe timeouts and are
	// suspected and declared failed until the storm passes. The idle
	// figures are of the settled cluster, so wait up to four waitBounds,
	// and say how long it took.
	settle := time.Now()
	var err error
	for range 4 {
		if err = h.waitConverged(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes: every node sees every other alive with a report %v after every node answered", n, time.Since(settle).Round(100*time.Millisecond))
	// Count gossip (port 7946, UDP and TCP) on its own in every node's
	// namespace: the interface also carries the health probes.
	for _, nd := range h.nodes {
		if err := lab.nft(nd.ns, gossipCounters); err != nil {
			t.Fatal(err)
		}
	}
	// Idle: counters and CPU before and after.
	before := h.sample(t, lab)
	hold(ctx, *gossipIdle)
	after := h.sample(t, lab)
	var tx, txp, rx, rxp, cpu, gtx, gtxp, grx, grxp float64
	secs := after.at.Sub(before.at).Seconds()
	for _, nd := range h.nodes {
		b, a := before.nodes[nd.name], after.nodes[nd.name]
		tx += float64(a.txBytes-b.txBytes) / secs
		txp += float64(a.txPackets-b.txPackets) / secs
		rx += float64(a.rxBytes-b.rxBytes) / secs
		rxp += float64(a.rxPackets-b.rxPackets) / secs
		cpu += (a.cpu - b.cpu).Seconds() / secs
		gtx += float64(a.gossipTx.bytes-b.gossipTx.bytes) / secs
		gtxp += float64(a.gossipTx.packets-b.gossipTx.packets) / secs
		grx += float64(a.gossipRx.bytes-b.gossipRx.bytes) / secs
		grxp += float64(a.gossipRx.packets-b.gossipRx.packets) / secs
	}
	k := float64(len(h.nodes))

	took := h.failoverTrials(t, lab, first, *gossipTrials)
	sites := len(h.eps)
	return fmt.Sprintf("%6d %6d %10.0f %10.1f %10.0f %10.1f %10.0f %10.1f %10.0f %10.1f %9.2f %10.3f\n",
		n, sites, gtx/k, gtxp/k, grx/k, grxp/k, tx/k, txp/k, rx/k, rxp/k, cpu/k*100, took.Seconds())
}

// failoverTrials fails site over trials times and returns the p99 (with
// few trials, the slowest) of the time until every node of the other
// sites answers without it. Each trial black-holes the site's namespaces
// (its nodes and its endpoint fall silent for everyone else: probes and
// gossip time out), measures, lifts the black hole and waits until every
// node answers the site again and the cluster has converged, then lets it
// idle a few seconds so that the next trial starts with kept probe
// connections and random probe phases. The last trial also kills the
// site's processes, as a single trial always did; before that, behind the
// black hole, a kill would change nothing the other nodes can see.
//
// Each trial logs, besides the answer times, when each surviving node's
// own probes took the site's endpoint down (from its log) and the earliest
// moment the merge rules could withdraw it: when a strict majority of the
// other sites each had a majority of their nodes saying down (quorum).
// What lies between that and the slowest answer is gossip, staleness and
// publishing.
func (h *harness) failoverTrials(t *testing.T, lab *netLab, site string, trials int) time.Duration {
	ctx := t.Context()
	nodes, eps := h.sitesOf(site)
	var others []*node
	for _, nd := range h.nodes {
		if nd.site != site {
			others = append(others, nd)
		}
	}
	var rules []string
	for _, nd := range nodes {
		rules = append(rules, blackHole(nd.ns)...)
	}
	var tooks, verdicts, quorums, stales []time.Duration
	for i := range trials {
		last := i == trials-1
		offsets := logOffsets(others)
		cpu0, busy0 := nodesCPU(others), machineCPU()
		t0 := time.Now()
		if err := lab.wire(rules...); err != nil {
			t.Fatal(err)
		}
		// The black hole is in place somewhere between t0 and now:
		// every figure counts from t0, and so includes up to this.
		wired := time.Since(t0)
		var ps []*proc
		if last {
			_, ps = h.kill(nodes, eps)
		}
		wctx, stopWatch := context.WithCancel(ctx)
		watched := make(chan verdictTimes, 1)
		go func() { watched <- h.watchVerdict(wctx, others[0], eps[0], t0) }()
		answered, lost, err := h.dnsPollTimes(ctx, lab, others, h.noSite(site))
		if err != nil {
			stopWatch()
			t.Fatal(err)
		}
		took := time.Since(t0)
		// What the nodes, and the whole machine, spent meanwhile: 30
		// nodes on a few cores all merging and publishing at once.
		cores := (nodesCPU(others) - cpu0).Seconds() / took.Seconds()
		busy := machineCPU().since(busy0)
		reap(ps)
		var ans []time.Duration
		for _, at := range answered {
			ans = append(ans, at.Sub(t0))
		}
		// The nodes' own verdicts may come after the answers changed
		// (the other sites' votes decided): give the slowest time to
		// log it.
		hold(ctx, 1500*time.Millisecond)
		stopWatch()
		w := <-watched
		own, quorum := downVerdicts(t, others, offsets, eps, t0)
		as, os := summarize(ans), summarize(slices.Collect(maps.Values(own)))
		tooks, quorums = append(tooks, took), append(quorums, quorum)
		verdicts = append(verdicts, os.max)
		t.Logf("trial %d: every node answered without %s after %ss (nodes: min %ss, median %ss); own probes down: min %ss, median %ss, max %ss (%d of %d nodes); quorum of sites %ss; at %s: site silent (stale) %ss, endpoint withdrawn %ss; %d queries unanswered; nft took %ss; meanwhile the surviving nodes used %.2f cores, the machine was %.0f%% busy",
			i+1, site, secs(took), secs(as.min), secs(as.median), secs(os.min), secs(os.median), secs(os.max), len(own), len(others), secs(quorum),
			others[0].name, secs(w.silent), secs(w.down), lost, secs(wired), cores, busy*100)
		stales = append(stales, w.silent)
		var silent []string
		for _, nd := range others {
			if _, ok := own[nd.name]; !ok {
				silent = append(silent, nd.name)
				if *debugTrials && len(silent) == 1 {
					h.showLog(nd.name, nd.log)
					// Can it open a connection to a healthy endpoint of
					// another site, and how full are that endpoint's
					// accept queue and its neighbour table?
					other := h.eps[len(h.eps)-1]
					cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					d, err := lab.connectTime(cctx, nd.ns, other.addr)
					cancel()
					ss, _ := exec.Command("ip", "netns", "exec", lab.spaces[other.ns], "ss", "-ltn").CombinedOutput()
					neigh, _ := exec.Command("ip", "-n", lab.spaces[nd.ns], "neigh").CombinedOutput()
					t.Logf("%s: connect to %s: %v %v\n%s listeners:\n%s\n%s neighbours:\n%s", nd.name, other.addr, d, err, other.ns, ss, nd.name, neigh)
				}
			}
		}
		if len(silent) > 0 {
			t.Logf("trial %d: no down verdict of their own logged by %s", i+1, strings.Join(silent, ", "))
		}
		if last {
			break
		}
		t1 := time.Now()
		if err := lab.wire(); err != nil {
			t.Fatal(err)
		}
		if err := h.dnsPoll(ctx, lab, h.nodes, h.steady(site)); err != nil {
			t.Fatal(err)
		}
		back := time.Since(t1)
		for range 2 {
			if err = h.waitConverged(ctx); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("trial %d: healed: %s back everywhere after %ss, converged after %ss", i+1, site, secs(back), secs(time.Since(t1)))
		hold(ctx, 5*time.Second)
	}
	if trials > 1 {
		s, v, q, st := summarize(tooks), summarize(verdicts), summarize(quorums), summarize(stales)
		t.Logf("%d nodes, %d trials, seconds (min / median / p99 / max):\n  every node answers without %s: %s / %s / %s / %s\n  quorum of sites says down:     %s / %s / %s / %s\n  last node's own probes down:   %s / %s / %s / %s\n  %s silent at %s (stale):      %s / %s / %s / %s",
			len(h.nodes), trials, site, secs(s.min), secs(s.median), secs(s.p99), secs(s.max),
			secs(q.min), secs(q.median), secs(q.p99), secs(q.max), secs(v.min), secs(v.median), secs(v.p99), secs(v.max),
			site, others[0].name, secs(st.min), secs(st.median), secs(st.p99), secs(st.max))
	}
	return summarize(tooks).p99
}

// nodesCPU returns the CPU time that nodes, while running, have used.
func nodesCPU(nodes []*node) time.Duration {
	var sum time.Duration
	for _, n := range nodes {
		if n.proc == nil {
			continue
		}
		if d, err := proctest.CPU(n.proc.cmd.Process.Pid); err == nil {
			sum += d
		}
	}
	return sum
}

// cpuTimes is the machine's busy and total CPU time, in clock ticks, from
// /proc/stat.
type cpuTimes struct{ busy, total uint64 }

func machineCPU() cpuTimes {
	var c cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		c.total += v
		if i != 3 && i != 4 { // idle, iowait
			c.busy += v
		}
	}
	return c
}

// since returns the busy fraction of the machine between c0 and c.
func (c cpuTimes) since(c0 cpuTimes) float64 {
	if c.total <= c0.total {
		return 0
	}
	return float64(c.busy-c0.busy) / float64(c.total-c0.total)
}

// verdictTimes is when, after a site fell silent, one node's merged view
// first said that the site's endpoint's own site is silent (its nodes'
// reports are stale) and first withdrew the endpoint; zero when not seen.
type verdictTimes struct{ silent, down time.Duration }

// watchVerdict polls n's status every 20ms until ctx is done and returns
// when it first saw ep's site silent, and ep withdrawn.
func (h *harness) watchVerdict(ctx context.Context, n *node, ep *endpoint, t0 time.Time) verdictTimes {
	var out verdictTimes
	id := "/" + ep.site + "/" + ep.addr.Addr().String()
	for ctx.Err() == nil && (out.silent == 0 || out.down == 0) {
		var doc struct {
			Services []struct {
				Sites []struct {
					Endpoints []struct {
						ID     string `json:"id"`
						Up     bool   `json:"up"`
						Reason string `json:"reason"`
					} `json:"endpoints"`
				} `json:"sites"`
			} `json:"services"`
		}
		err := h.api(ctx, n, http.MethodGet, "/api/v1/status", h.readToken, nil, &doc, http.StatusOK)
		at := time.Since(t0)
		if err == nil {
			for _, svc := range doc.Services {
				for _, st := range svc.Sites {
					for _, e := range st.Endpoints {
						if !strings.HasSuffix(e.ID, id) {
							continue
						}
						if out.silent == 0 && strings.Contains(e.Reason, "silent") {
							out.silent = at
						}
						if out.down == 0 && !e.Up {
							out.down = at
						}
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out
}

// logOffsets returns the size of each node's log.
func logOffsets(nodes []*node) map[string]int64 {
	out := map[string]int64{}
	for _, n := range nodes {
		if fi, err := os.Stat(n.log); err == nil {
			out[n.name] = fi.Size()
		}
	}
	return out
}

// downVerdicts reads what each node logged after its offset and returns,
// per node, when (after t0) its own probes first took an endpoint of eps
// down, and the earliest moment at which a strict majority of the sites
// of nodes had each a majority of their nodes saying down (zero when they
// never had).
func downVerdicts(t *testing.T, nodes []*node, offsets map[string]int64, eps []*endpoint, t0 time.Time) (map[string]time.Duration, time.Duration) {
	own := map[string]time.Duration{}
	for _, n := range nodes {
		data, err := os.ReadFile(n.log)
		if err != nil {
			t.Fatal(err)
		}
		data = data[min(offsets[n.name], int64(len(data))):]
		for line := range strings.Lines(string(data)) {
			if !strings.Contains(line, `msg="target state changed"`) || !strings.Contains(line, " to=down") {
				continue
			}
			hit := false
			for _, e := range eps {
				hit = hit || strings.Contains(line, "/"+e.addr.Addr().String()+" ")
			}
			ts, ok := strings.CutPrefix(line, "time=")
			if !hit || !ok {
				continue
			}
			ts, _, _ = strings.Cut(ts, " ")
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || at.Before(t0) {
				continue
			}
			if _, seen := own[n.name]; !seen {
				own[n.name] = at.Sub(t0)
			}
		}
	}
	// Each site says down when a majority of its nodes do; the quorum
	// is the strict majority of sites.
	bySite := map[string][]time.Duration{}
	size := map[string]int{}
	for _, n := range nodes {
		size[n.site]++
		if d, ok := own[n.name]; ok {
			bySite[n.site] = append(bySite[n.site], d)
		}
	}
	var siteDown []time.Duration
	for site, ds := range bySite {
		need := size[site]/2 + 1
		if len(ds) >= need {
			slices.Sort(ds)
			siteDown = append(siteDown, ds[need-1])
		}
	}
	need := len(size)/2 + 1
	if len(siteDown) < need {
		return own, 0
	}
	slices.Sort(siteDown)
	return own, siteDown[need-1]
}

// scaleSample is every node's interface counters and CPU time at one
// moment.
type scaleSample struct {
	at    time.Time
	nodes map[string]nodeSample
}

type nodeSample struct {
	txBytes, txPackets, rxBytes, rxPackets uint64
	cpu                                    time.Duration // user plus system CPU time
	gossipTx, gossipRx                     counter
}

type counter struct{ bytes, packets uint64 }

// gossipCounters counts what a node sends and receives on the gossip
// port, each packet once (UDP gossip goes from port 7946 to port 7946).
var gossipCounters = fmt.Sprintf(`table inet gslbt_count {
  chain out { type filter hook output priority 0; policy accept;
    meta l4proto { tcp, udp } th sport %[1]d counter
    meta l4proto { tcp, udp } th dport %[1]d th sport != %[1]d counter
  }
  chain in { type filter hook input priority 0; policy accept;
    meta l4proto { tcp, udp } th sport %[1]d counter
    meta l4proto { tcp, udp } th dport %[1]d th sport != %[1]d counter
  }
}
`, labGossipPort)

// readGossipCounters sums the counters of gossipCounters per chain.
func readGossipCounters(lab *netLab, ns string) (tx, rx counter, err error) {
	out, err := exec.Command("ip", "netns", "exec", lab.spaces[ns], "nft", "-j", "list", "table", "inet", "gslbt_count").Output()
	if err != nil {
		return tx, rx, err
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain string `json:"chain"`
				Expr  []struct {
					Counter *struct{ Packets, Bytes uint64 } `json:"counter"`
				} `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return tx, rx, err
	}
	for _, item := range doc.Nftables {
		if item.Rule == nil {
			continue
		}
		for _, e := range item.Rule.Expr {
			if e.Counter == nil {
				continue
			}
			c := &rx
			if item.Rule.Chain == "out" {
				c = &tx
			}
			c.bytes += e.Counter.Bytes
			c.packets += e.Counter.Packets
		}
	}
	return tx, rx, nil
}

func (h *harness) sample(t *testing.T, lab *netLab) scaleSample {
	s := scaleSample{at: time.Now(), nodes: map[string]nodeSample{}}
	for _, n := range h.nodes {
		out, err := exec.Command("ip", "-n", lab.spaces[n.ns], "-j", "-s", "link", "show", "dev", "eth0").Output()
		if err != nil {
			t.Fatalf("counters of %s: %v", n.name, err)
		}
		var links []struct {
			Stats struct {
				RX struct{ Bytes, Packets uint64 } `json:"rx"`
				TX struct{ Bytes, Packets uint64 } `json:"tx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
			t.Fatalf("counters of %s: %v: %s", n.name, err, out)
		}
		cpu, err := proctest.CPU(n.proc.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		l := links[0].Stats
		gtx, grx, err := readGossipCounters(lab, n.ns)
		if err != nil {
			t.Fatalf("gossip counters of %s: %v", n.name, err)
		}
		s.nodes[n.name] = nodeSample{l.TX.Bytes, l.TX.Packets, l.RX.Bytes, l.RX.Packets, cpu, gtx, grx}
	}
	return s
}

// dnsPoll asks every node of nodes for qname A every 20ms from the client
// namespace until its answer meets cond, or fails after waitBound.
func (h *harness) dnsPoll(ctx context.Context, lab *netLab, nodes []*node, cond condition) error {
	_, _, err := h.dnsPollTimes(ctx, lab, nodes, cond)
	return err
}

// dnsPollTimes is dnsPoll, and returns when each node's first answer that
// met cond arrived, and how many queries got no answer. After a query
// without an answer the poller asks again from a new socket (another
// source port), as a resolver would.
func (h *harness) dnsPollTimes(ctx context.Context, lab *netLab, nodes []*node, cond condition) (map[string]time.Time, int, error) {
	dial := lab.dialer("client")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		when = map[string]time.Time{}
		lost int
	)
	errs := make(chan error, len(nodes))
	deadline := time.Now().Add(waitBound)
	for _, n := range nodes {
		wg.Go(func() {
			var conn *dns.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			var last answer
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if conn == nil {
					c, err := dial(ctx, "udp", n.dns.String())
					if err != nil {
						errs <- err
						return
					}
					conn = &dns.Conn{Conn: c}
				}
				last = queryOnce(conn)
				if cond.ok(last) {
					mu.Lock()
					when[n.name] = last.end
					mu.Unlock()
					return
				}
				if last.err != nil {
					mu.Lock()
					lost++
					mu.Unlock()
					conn.Close()
					conn = nil
				}
				time.Sleep(20 * time.Millisecond)
			}
			errs <- fmt.Errorf("%s: not %s within %s: last %s", n.name, cond.name, waitBound, last)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, lost, err
	}
	return when, lost, nil
}

func queryOnce(conn *dns.Conn) answer {
	a := answer{start: time.Now()}
	m := new(dns.Msg)
	m.SetQuestion(qname+".", dns.TypeA)
	_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if err := conn.WriteMsg(m); err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	r, err := conn.ReadMsg()
	for err == nil && r.Id != m.Id { // a late reply to an earlier query
		r, err = conn.ReadMsg()
	}
	a.end = time.Now()
	if err != nil {
		a.err = err
		return a
	}
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(x.A)
			a.addrs = append(a.addrs, ip.Unmap())
		}
	}
	slices.SortFunc(a.addrs, netip.Addr.Compare)
	return a
}
