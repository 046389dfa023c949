package scenario

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
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
func TestGossipScale(t *testing.T) {
	if *gossipScale == "" {
		t.Skip("skipped: on demand, with -scenario.gossipscale=3,10,30")
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
	lab := newNetLab(t, netClientIP, labSpaces(lay))
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

	// Failover: the first site dies.
	nodes, eps := h.sitesOf(first)
	var others []*node
	for _, nd := range h.nodes {
		if nd.site != first {
			others = append(others, nd)
		}
	}
	var rules []string
	for _, nd := range nodes {
		rules = append(rules, blackHole(nd.ns)...)
	}
	t0 := time.Now()
	if err := lab.wire(rules...); err != nil {
		t.Fatal(err)
	}
	_, ps := h.kill(nodes, eps)
	if err := h.dnsPoll(ctx, lab, others, h.noSite(first)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	reap(ps)
	sites := len(h.eps)
	return fmt.Sprintf("%6d %6d %10.0f %10.1f %10.0f %10.1f %10.0f %10.1f %10.0f %10.1f %9.2f %10.3f\n",
		n, sites, gtx/k, gtxp/k, grx/k, grxp/k, tx/k, txp/k, rx/k, rxp/k, cpu/k*100, took.Seconds())
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
	dial := lab.dialer("client")
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	deadline := time.Now().Add(waitBound)
	for _, n := range nodes {
		wg.Go(func() {
			c, err := dial(ctx, "udp", n.dns.String())
			if err != nil {
				errs <- err
				return
			}
			conn := &dns.Conn{Conn: c}
			defer conn.Close()
			var last answer
			for time.Now().Before(deadline) && ctx.Err() == nil {
				last = queryOnce(conn)
				if cond.ok(last) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			errs <- fmt.Errorf("%s: not %s within %s: last %s", n.name, cond.name, waitBound, last)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
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
