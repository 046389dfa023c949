package cluster

import (
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/gslbd/gslbd/health"
)

var (
	costSizes = flag.String("cluster.cost", "",
		"comma-separated cluster sizes for TestIdleCost (e.g. 3,10,30); empty skips it")
	costFor = flag.Duration("cluster.costfor", 10*time.Second,
		"how long TestIdleCost measures each idle cluster")
)

// counted is a node's gossip transport with what it sent counted:
// memberlist's own transport, real sockets and all.
type counted struct {
	*transport
	packets, bytes, streams atomic.Int64
}

func (t *counted) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packets.Add(1)
	t.bytes.Add(int64(len(b)))
	return t.transport.WriteTo(b, addr)
}

func (t *counted) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *counted) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	t.streams.Add(1)
	return t.transport.DialTimeout(addr, timeout)
}

func (t *counted) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// sent is what a counted transport had sent at one moment.
type sent struct{ packets, bytes, streams int64 }

func (t *counted) sent() sent { return sent{t.packets.Load(), t.bytes.Load(), t.streams.Load()} }

// bigCluster starts n nodes, node i on 127.0.0.<i+1> (distinct addresses,
// as distinct hosts would have; every one on loopback), the others
// joining through the first, each with its transport counted and every
// node's report listing one target per site for 10 sites. It waits
// until every node sees all n alive with every other's report.
func bigCluster(t *testing.T, n int, mod func(*Config)) ([]*testNode, []*counted) {
	t.Helper()
	nodes := make([]*testNode, 0, n)
	counts := make([]*counted, n)
	for i := range n {
		cfg := Config{Name: fmt.Sprintf("n%02d", i), Bind: fmt.Sprintf("127.0.0.%d:0", i+1), Site: fmt.Sprintf("s%d", i%10)}
		if i > 0 {
			cfg.Seeds = nodes[0].seed()
		}
		cfg.wrapTransport = func(nt *transport) memberlist.Transport {
			counts[i] = &counted{transport: nt}
			return counts[i]
		}
		if mod != nil {
			mod(&cfg)
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	// Stop them all at once at the end (this runs before each node's own
	// cleanup, which then only waits): one by one, each graceful leave
	// waiting on the others' gossip, the stop takes long on a loaded
	// machine.
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.cancel()
		}
	})
	for _, nd := range nodes {
		nd.Announce(health.Report{Ready: true, Targets: siteTargets(10, health.Up)})
	}
	waitFor(t, time.Duration(n)*time.Second, fmt.Sprintf("%d nodes converge", n), func() error { return whole(nodes) })
	return nodes, counts
}

// whole fails unless every node lists every node as a member that has
// neither failed nor left, and holds a report from every other. A member
// may show as suspect: on a loaded machine (the race detector, other
// work) a report can age past Staleness for a moment, which the tests
// measure rather than forbid.
func whole(nodes []*testNode) error {
	for _, nd := range nodes {
		ms := nd.Members()
		if len(ms) != len(nodes) {
			return fmt.Errorf("%s lists %d members, want %d", nd.cfg.Name, len(ms), len(nodes))
		}
		for _, m := range ms {
			if m.State == MemberDead || m.State == MemberLeft {
				return fmt.Errorf("%s sees %s as %s", nd.cfg.Name, m.Name, m.State)
			}
		}
		if got := len(nd.Reports()); got != len(nodes)-1 {
			return fmt.Errorf("%s holds %d reports, want %d", nd.cfg.Name, got, len(nodes)-1)
		}
	}
	return nil
}

// siteTargets is a report's targets for one service with one endpoint in
// each of sites sites.
func siteTargets(sites int, s health.State) map[string]health.State {
	out := map[string]health.State{}
	for i := range sites {
		out[fmt.Sprintf("talk.example.com/s%d/10.0.%d.200", i, i)] = s
	}
	return out
}

// TestIdleCost measures, for each size of -cluster.cost, what an idle
// cluster of in-process nodes (real memberlist, real UDP and TCP on
// loopback, encrypted) costs each node: packets, bytes and TCP streams
// sent per second, and CPU (the test process's, divided by the nodes),
// and how fresh the reports stay (the age of every report on every node,
// sampled every 20ms: the sampling's own CPU is in the figure).
// Run it with -cpuprofile to see where the CPU goes. On demand only:
//
//	go test ./cluster -run TestIdleCost -v -count=1 -cluster.cost=3,10,30
func TestIdleCost(t *testing.T) {
	if *costSizes == "" {
		t.Skip("skipped: on demand, with -cluster.cost=3,10,30")
	}
	var sizes []int
	for _, f := range strings.Split(*costSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 250 {
			t.Fatalf("-cluster.cost: %q is not a size from 2 to 250", f)
		}
		sizes = append(sizes, n)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%6s %10s %10s %10s %12s %10s %10s %10s\n", "nodes", "pkt/s", "B/s", "streams/s", "CPU %core", "age p50", "age p99", "age max")
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			nodes, counts := bigCluster(t, n, func(c *Config) { c.Keys = [][]byte{key2} })
			before := make([]sent, n)
			for i, c := range counts {
				before[i] = c.sent()
			}
			cpu0, err := processCPU()
			if err != nil {
				t.Skip(err)
			}
			start := time.Now()
			p50, p99, worst := ageWatch(nodes, *costFor)
			secs := time.Since(start).Seconds()
			cpu1, _ := processCPU()
			var pkts, bytes, streams float64
			for i, c := range counts {
				s := c.sent()
				pkts += float64(s.packets - before[i].packets)
				bytes += float64(s.bytes - before[i].bytes)
				streams += float64(s.streams - before[i].streams)
			}
			k := float64(n) * secs
			fmt.Fprintf(&out, "%6d %10.1f %10.0f %10.2f %12.2f %10v %10v %10v\n", n, pkts/k, bytes/k, streams/k, (cpu1-cpu0).Seconds()/k*100,
				p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
			if err := whole(nodes); err != nil {
				t.Errorf("after the idle period: %v", err)
			}
		})
	}
	t.Logf("idle cluster, per node (sent; CPU of the whole test process divided by the nodes)\n%s", out.String())
}
