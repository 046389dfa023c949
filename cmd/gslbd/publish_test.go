package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/resolver"
	"github.com/gslbd/gslbd/zones"
)

// fakePeers stands in for the cluster: the test sets the reports held.
type fakePeers struct {
	mu      sync.Mutex
	reports []health.Received
	changed chan struct{}
	sent    int
}

func (f *fakePeers) Reports() []health.Received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]health.Received(nil), f.reports...)
}
func (f *fakePeers) Changed() <-chan struct{} { return f.changed }
func (f *fakePeers) Announce(health.Report) {
	f.mu.Lock()
	f.sent++
	f.mu.Unlock()
}
func (f *fakePeers) AckDrains(string, []drain.Ack) {}
func (f *fakePeers) set(rs ...health.Received) {
	f.mu.Lock()
	f.reports = rs
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

const (
	dc1Endpoint = "talk.example.com/dc1/127.0.1.10"
	dc2Endpoint = "talk.example.com/dc2/127.0.2.10"
)

func publisherFixture(t *testing.T) *zones.Set {
	t.Helper()
	var rrs []dns.RR
	for _, s := range []string{
		"example.com. 60 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300",
		"example.com. 60 IN NS ns1.example.com.",
		"ns1.example.com. 60 IN A 192.0.2.1",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	svc := &zones.Service{
		Name: "talk.example.com.", Policy: zones.Failover, TTL: 20, MinHealthy: zones.Threshold{Count: 1}, AllDown: zones.AllDownAll,
		Sites: []zones.ServiceSite{
			{Site: "dc1", Endpoints: []zones.Endpoint{{ID: dc1Endpoint, Addr: netip.MustParseAddr("127.0.1.10")}}},
			{Site: "dc2", Endpoints: []zones.Endpoint{{ID: dc2Endpoint, Addr: netip.MustParseAddr("127.0.2.10")}}},
		},
	}
	return zones.NewSet([]*zones.Zone{zones.NewZone("example.com.", "test", rrs)}, []*zones.Service{svc}, "h1")
}

// runPublisher runs, inside the caller's synctest bubble, a checker of
// targets and a publisher for node dc2-a with cfg (Self and Site are set
// here), fed by fake peers. Both stop when the test's context is done.
func runPublisher(t *testing.T, cfg publisherConfig, targets []health.Target) (*publisher, *fakePeers) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	checker, err := health.NewChecker(health.CheckerConfig{}, targets, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := resolver.New(resolver.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	peers := &fakePeers{changed: make(chan struct{}, 1)}
	cfg.Self, cfg.Site = "dc2-a", "dc2"
	p := newPublisher(cfg, publisherFixture(t), publisherDeps{Local: checker, Peers: peers, Resolver: res}, logger, prometheus.NewRegistry())
	go checker.Run(t.Context())
	go p.run(t.Context())
	return p, peers
}

// TestPublisherStalenessAndRevival runs the publisher on a fake clock for a
// node in dc2 whose own probes see both sites up. dc1's node reports its
// endpoint down and a node in dc3 agrees, so dc1's verdict is down (dc1's
// node alone would not do: every other site would contradict it); when
// those reports go stale the publisher re-merges by itself and the
// cross-check (up) decides; when they are fresh again, they count again.
func TestPublisherStalenessAndRevival(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := func(context.Context, netip.AddrPort) error { return nil }
		var targets []health.Target
		for _, id := range []string{dc1Endpoint, dc2Endpoint} {
			targets = append(targets, health.Target{ID: id, Addr: netip.MustParseAddrPort("127.0.0.1:9"), Kind: "tcp",
				Probe: up, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2})
		}
		const staleness = 700 * time.Millisecond
		p, peers := runPublisher(t, publisherConfig{Staleness: staleness}, targets)

		dc1Down := func(at time.Time) []health.Received {
			var out []health.Received
			for _, origin := range []string{"dc1-a", "dc3-a"} {
				out = append(out, health.Received{At: at, Report: health.Report{Origin: origin, Site: origin[:3], Seq: 1, ConfigHash: "h1", Ready: true,
					Targets: map[string]health.State{dc1Endpoint: health.Down, dc2Endpoint: health.Up}}})
			}
			return out
		}
		time.Sleep(time.Second) // the first probe round
		synctest.Wait()
		if !p.current().Local.Ready() {
			t.Fatal("first probe round not published after 1s")
		}
		peers.set(dc1Down(time.Now())...)
		time.Sleep(publishMaxDelay)
		synctest.Wait()
		if v := p.current().View.Verdict(dc1Endpoint); v.Up {
			t.Fatalf("dc1 endpoint with dc1's own report down: verdict %+v, want down", v)
		}
		gen := p.current().Generation

		// No refresh: the reports go stale and the publisher re-merges on
		// its own timer.
		time.Sleep(staleness + publishMaxDelay)
		synctest.Wait()
		if v := p.current().View.Verdict(dc1Endpoint); !v.Up {
			t.Fatalf("the reports stale, cross-check up: verdict %+v, want up", v)
		}
		if p.current().Generation == gen {
			t.Error("a verdict changed by staleness was not published to the resolver")
		}

		// The reports are refreshed (the cluster signals a revival).
		peers.set(dc1Down(time.Now())...)
		time.Sleep(publishMaxDelay)
		synctest.Wait()
		if v := p.current().View.Verdict(dc1Endpoint); v.Up {
			t.Fatalf("the reports fresh again: verdict %+v, want down", v)
		}

		// Nothing changes while heartbeats keep the report fresh: no new
		// generation on the staleness timer.
		gen = p.current().Generation
		for range 10 {
			time.Sleep(200 * time.Millisecond)
			peers.mu.Lock()
			for i := range peers.reports {
				peers.reports[i].At = time.Now()
			}
			peers.mu.Unlock()
		}
		synctest.Wait()
		if got := p.current().Generation; got != gen {
			t.Errorf("generation moved from %d to %d with nothing changing", gen, got)
		}
	})
}

// TestPublisherQuietSite: a node in dc2 whose own probes, and dc3's, see
// dc1's endpoint fail, while dc1's node last said it was up and then
// fell silent (the whole site died). The endpoint is withdrawn once dc1's
// report has gone two heartbeats without one (Quiet), by the publisher's
// own timer, not Staleness after it: the silence and the other sites'
// probes agree. Without Quiet it stays up until dc1's report is stale.
func TestPublisherQuietSite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quiet time.Duration
		want  time.Duration // how long after dc1's last heartbeat the endpoint is out
	}{
		{"quiet", 400 * time.Millisecond, 400 * time.Millisecond},
		{"staleness only", 0, 700 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := func(context.Context, netip.AddrPort) error { return nil }
				down := func(context.Context, netip.AddrPort) error { return errors.New("connect: connection refused") }
				targets := []health.Target{
					{ID: dc1Endpoint, Addr: netip.MustParseAddrPort("127.0.0.1:9"), Kind: "tcp", Probe: down,
						Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2},
					{ID: dc2Endpoint, Addr: netip.MustParseAddrPort("127.0.0.1:9"), Kind: "tcp", Probe: up,
						Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2},
				}
				p, peers := runPublisher(t, publisherConfig{Staleness: 700 * time.Millisecond, Quiet: tc.quiet}, targets)
				time.Sleep(time.Second) // the first probe round
				synctest.Wait()

				report := func(origin string, dc1 health.State) health.Received {
					return health.Received{At: time.Now(), Report: health.Report{Origin: origin, Site: origin[:3], Seq: 1, ConfigHash: "h1", Ready: true,
						Targets: map[string]health.State{dc1Endpoint: dc1, dc2Endpoint: health.Up}}}
				}
				last := time.Now() // dc1-a's last heartbeat
				peers.set(report("dc1-a", health.Up), report("dc3-a", health.Down))
				time.Sleep(publishMaxDelay)
				synctest.Wait()
				if v := p.current().View.Verdict(dc1Endpoint); !v.Up {
					t.Fatalf("dc1's own node fresh and up: verdict %+v, want up", v)
				}
				// dc3 keeps its heartbeats; dc1 is silent.
				var out time.Duration
				for out == 0 && time.Since(last) < time.Second {
					time.Sleep(10 * time.Millisecond)
					peers.mu.Lock()
					peers.reports[1].At = time.Now()
					peers.mu.Unlock()
					synctest.Wait()
					if !p.current().View.Verdict(dc1Endpoint).Up {
						out = time.Since(last)
					}
				}
				if out < tc.want || out > tc.want+20*time.Millisecond {
					t.Errorf("dc1's endpoint withdrawn %v after dc1's last heartbeat, want %v", out, tc.want)
				}
				t.Logf("withdrawn after %v: %s", out, p.current().View.Verdict(dc1Endpoint).Reason)
			})
		})
	}
}

// TestPublisherExpeditesContested: a peer reports an endpoint down that
// this node's probes see up; the publisher has the node probe it again at
// once rather than at its next turn, half an interval later.
func TestPublisherExpeditesContested(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var probes []time.Time // of dc1's endpoint
		up := func(context.Context, netip.AddrPort) error { return nil }
		counted := func(context.Context, netip.AddrPort) error {
			mu.Lock()
			probes = append(probes, time.Now())
			mu.Unlock()
			return nil
		}
		targets := []health.Target{
			{ID: dc1Endpoint, Addr: netip.MustParseAddrPort("127.0.0.1:9"), Kind: "tcp", Probe: counted,
				Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2},
			{ID: dc2Endpoint, Addr: netip.MustParseAddrPort("127.0.0.2:9"), Kind: "tcp", Probe: up,
				Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2},
		}
		_, peers := runPublisher(t, publisherConfig{Staleness: 700 * time.Millisecond}, targets)
		time.Sleep(2500 * time.Millisecond) // up, and between two probes
		synctest.Wait()
		mu.Lock()
		last := probes[len(probes)-1]
		mu.Unlock()
		if since := time.Since(last); since >= 600*time.Millisecond {
			t.Fatalf("last probe %v ago, want a probe due no sooner than 300ms from now", since)
		}

		told := time.Now()
		peers.set(health.Received{At: told, Report: health.Report{Origin: "dc3-a", Site: "dc3", Seq: 1, ConfigHash: "h1", Ready: true,
			Targets: map[string]health.State{dc1Endpoint: health.Down, dc2Endpoint: health.Up}}})
		time.Sleep(publishMaxDelay)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if got := probes[len(probes)-1]; !got.After(last) || got.Sub(told) > publishMaxDelay {
			t.Errorf("after a peer said down: last probe %v after it said so, want one within %v", got.Sub(told), publishMaxDelay)
		}
	})
}
