package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
)

// links is a switchboard of cut links between test nodes on loopback.
// Every node's transport drops what it would send to a cut address, and
// dials to one hang until their timeout, as across a black hole: with
// both directions cut on both sides nothing passes either way.
type links struct {
	mu  sync.Mutex
	cut map[[2]string]bool // {from, to} gossip addresses
}

func newLinks() *links { return &links{cut: map[[2]string]bool{}} }

// split cuts every link between the nodes of one side and the other's.
func (l *links) split(side1, side2 []*testNode, cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range side1 {
		for _, b := range side2 {
			x, y := a.Addr().String(), b.Addr().String()
			l.cut[[2]string{x, y}], l.cut[[2]string{y, x}] = cut, cut
		}
	}
}

func (l *links) isCut(from, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut[[2]string{from, to}]
}

// wrap returns the option that puts a node's transport on the switchboard.
func (l *links) wrap(c *Config) {
	c.wrapTransport = func(nt *transport) memberlist.Transport {
		return &cutTransport{transport: nt, links: l, done: make(chan struct{})}
	}
}

// cutTransport is memberlist's own transport, real sockets and all, that
// drops what goes over a cut link.
type cutTransport struct {
	*transport
	links *links
	self  string
	done  chan struct{}
	once  sync.Once
}

func (t *cutTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = t.port()
	}
	a, p, err := t.transport.FinalAdvertiseAddr(ip, port)
	t.self = net.JoinHostPort(a.String(), strconv.Itoa(p))
	return a, p, err
}

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.links.isCut(t.self, addr) {
		return time.Now(), nil
	}
	return t.transport.WriteTo(b, addr)
}

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.links.isCut(t.self, addr) {
		select {
		case <-time.After(timeout):
		case <-t.done:
		}
		return nil, fmt.Errorf("dial %s: i/o timeout (link cut)", addr)
	}
	return t.transport.DialTimeout(addr, timeout)
}

func (t *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

func (t *cutTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return t.transport.Shutdown()
}

// TestPartitionHeals cuts a off from b and c until memberlist on each side
// has declared the other side dead, writes a drain on each side during the
// split, and heals the links: the membership must be whole again, every
// report fresh everywhere and both drains on every node, without any
// restart. memberlist alone never probes a member it declared dead, and
// before the reconnect loop the two sides stayed apart for good.
func TestPartitionHeals(t *testing.T) {
	t.Parallel()
	l := newLinks()
	tables := map[string]*drainTable{}
	nodes := startThree(t, func(c *Config) {
		l.wrap(c)
		tables[c.Name] = newDrainTable(t, c.Name)
		tables[c.Name].wire(c)
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	l.split([]*testNode{a}, []*testNode{b, c}, true)
	cut := time.Now()
	waitFor(t, 20*time.Second, "each side declares the other dead", func() error {
		var errs []error
		for _, p := range []struct {
			n     *testNode
			other []string
		}{{a, []string{"b", "c"}}, {b, []string{"a"}}, {c, []string{"a"}}} {
			for _, o := range p.other {
				if m, _ := p.n.member(o); m.State != MemberDead {
					errs = append(errs, fmt.Errorf("%s sees %s as %q", p.n.cfg.Name, o, m.State))
				}
			}
		}
		return errors.Join(errs...)
	})
	t.Logf("both sides declared each other dead %v after the cut", time.Since(cut).Round(time.Millisecond))

	// A drain on each side of the split.
	var recs []drain.Record
	for _, w := range []*testNode{a, b} {
		rec, err := tables[w.cfg.Name].store.Create(drain.Spec{Key: drain.Key{Site: "dc-" + w.cfg.Name}, Reason: "split"}, "ops", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		w.BroadcastDrains([]drain.Record{rec})
		recs = append(recs, rec)
	}
	// Each side's report changes too, so a stale copy would show.
	for _, n := range nodes {
		n.Announce(health.Report{Ready: true, Targets: targetsOf(n.cfg.Name, health.Down)})
	}

	l.split([]*testNode{a}, []*testNode{b, c}, false)
	healed := time.Now()
	took := waitFor(t, 15*time.Second, "the cluster is whole again", func() error {
		var errs []error
		for _, n := range nodes {
			errs = append(errs, n.allAlive("a", "b", "c"))
			for _, o := range nodes {
				if o == n {
					continue
				}
				errs = append(errs, n.hasTargets(o.cfg.Name, targetsOf(o.cfg.Name, health.Down)))
				if r, _ := n.report(o.cfg.Name); time.Since(r.At) > n.cfg.Staleness {
					errs = append(errs, fmt.Errorf("%s holds a stale report of %s", n.cfg.Name, o.cfg.Name))
				}
			}
			for _, rec := range recs {
				if err := tables[n.cfg.Name].holds(rec); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", n.cfg.Name, err))
				}
			}
		}
		return errors.Join(errs...)
	})
	t.Logf("membership whole, reports fresh and both drains everywhere %v after the links healed", took.Round(time.Millisecond))
	_ = healed
}
