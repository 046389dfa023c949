package resolver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the query path through ServeDNS with a
// recording writer, packing excluded: answer, metrics, and the writer's
// bookkeeping.
//
//	go test -run '^$' -bench ServeDNS -benchmem ./resolver/
func BenchmarkServeDNS(b *testing.B) {
	r, _ := newResolver(b, Config{})
	r.Publish(State{Zones: testSet(b), Health: health{}})
	for _, bc := range []struct {
		name string
		c    dnstest.Case
	}{
		{"static_A", dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}},
		{"static_A_EDNS", dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA, UDPSize: 1232}},
		{"service_A", dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}},
		{"service_A_failover", dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}},
		{"nxdomain", dnstest.Case{Qname: "nothere.example.org.", Qtype: dns.TypeA}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.name == "service_A_failover" {
				r.Publish(State{Zones: testSet(b), Health: amsDown})
			}
			req := bc.c.Msg()
			w := dnstest.NewRecorder("192.0.2.9")
			for b.Loop() {
				r.ServeDNS(w, req)
				w.Msgs = w.Msgs[:0]
			}
		})
	}
}

// BenchmarkServeDNSPacked is BenchmarkServeDNS with the reply packed into
// a reused buffer, as the server does on the wire.
func BenchmarkServeDNSPacked(b *testing.B) {
	r, _ := newResolver(b, Config{})
	r.Publish(State{Zones: testSet(b)})
	for _, bc := range []struct {
		name string
		c    dnstest.Case
	}{
		{"static_A", dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}},
		{"service_A", dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := bc.c.Msg()
			w := dnstest.NewRecorder("192.0.2.9")
			w.Pack = true
			for b.Loop() {
				r.ServeDNS(w, req)
				w.Msgs = w.Msgs[:0]
			}
		})
	}
}

// packed returns the wire form of c's query.
func packed(b *testing.B, c dnstest.Case) []byte {
	b.Helper()
	m := c.Msg()
	m.Id = 0x1234
	pkt, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return pkt
}

// BenchmarkFastPath measures the UDP fast path from query bytes to reply
// bytes, metrics included, socket excluded: what a reader does per
// packet besides the two system calls. (A nearest-policy name is not
// answered by the fast path: BenchmarkNearestECS.)
//
//	go test -run '^$' -bench FastPath -benchmem ./resolver/
func BenchmarkFastPath(b *testing.B) {
	r, _ := newResolver(b, Config{})
	r.Publish(State{Zones: testSet(b), Health: amsDown})
	for _, bc := range []struct {
		name string
		c    dnstest.Case
	}{
		{"static_A", dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}},
		{"static_A_EDNS", dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA, UDPSize: 1232, Do: true}},
		{"failover_A", dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}},
		{"failover_A_mixed_case", dnstest.Case{Qname: "WwW.Example.ORG.", Qtype: dns.TypeA, UDPSize: 1232}},
		{"nxdomain", dnstest.Case{Qname: "nothere.example.org.", Qtype: dns.TypeA}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt := packed(b, bc.c)
			rd := &reader{r: r, shard: 1}
			out := make([]byte, 0, 2048)
			if _, ok := rd.fast(r.cur.Load(), pkt, out, 0, netip.AddrPort{}); !ok {
				b.Fatal("not answered by the fast path")
			}
			for b.Loop() {
				st := r.cur.Load()
				hit, ok := rd.fast(st, pkt, out, 0, netip.AddrPort{})
				if !ok {
					b.Fatal("fell back")
				}
				hit.count(rd.shard)
			}
		})
	}
}

// BenchmarkNearestECS measures a nearest-policy service name: the
// answer depends on where the client is, so the fast path leaves it to
// the general path. "ECS" carries an ECS option for eu's 192.0.2.0/24
// (answered with fra's address, scope /24), "source" none (located by
// the client's address, in eu too). For each:
//   - wire: what a UDP reader does with the packet (udp.go handle): the
//     fast path's parse, which declines it, Unpack, the general path,
//     and the reply packed into a reused buffer; metrics included, the
//     socket excluded, as in BenchmarkFastPath;
//   - ServeDNS: the same from an unpacked message.
//
// udp_ECS is the whole server path over a real loopback socket, as in
// BenchmarkUDPRoundTrip (the client allocates nothing).
//
//	go test -run '^$' -bench NearestECS -benchmem ./resolver/
func BenchmarkNearestECS(b *testing.B) {
	r, _ := newResolver(b, Config{})
	r.Publish(State{Zones: regionSet(b, "")})
	const want = "203.0.113.2" // fra, eu's first site
	for _, bc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"ECS", ecsQuery("near.example.org.", 1, 24, "192.0.2.0")},
		{"source", dnstest.Case{Qname: "near.example.org.", Qtype: dns.TypeA, UDPSize: 1232}.Msg()},
	} {
		bc.req.Id = 0x1234
		pkt, err := bc.req.Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run("wire_"+bc.name, func(b *testing.B) {
			rd := &reader{r: r, shard: 1}
			out := make([]byte, 0, 2048)
			w := dnstest.NewRecorder("192.0.2.77")
			w.Pack = true
			for b.Loop() {
				st := r.cur.Load()
				if _, ok := rd.fast(st, pkt, out, 0, netip.AddrPort{}); ok {
					b.Fatal("answered by the fast path")
				}
				req := new(dns.Msg)
				if err := req.Unpack(pkt); err != nil {
					b.Fatal(err)
				}
				r.serve(w, req, rd.shard, time.Time{})
				w.Msgs = w.Msgs[:0]
			}
			checkNearest(b, r, w, bc.req, want)
		})
		b.Run("ServeDNS_"+bc.name, func(b *testing.B) {
			w := dnstest.NewRecorder("192.0.2.77")
			w.Pack = true
			for b.Loop() {
				r.ServeDNS(w, bc.req)
				w.Msgs = w.Msgs[:0]
			}
			checkNearest(b, r, w, bc.req, want)
		})
	}
	b.Run("udp_ECS", func(b *testing.B) {
		addr := startServers(b, r)
		req := ecsQuery("near.example.org.", 1, 24, "198.51.100.0") // us: iad
		pkt, err := req.Pack()
		if err != nil {
			b.Fatal(err)
		}
		buf := udpRoundTrips(b, addr, pkt)
		b.StopTimer()
		m := new(dns.Msg)
		if err := m.Unpack(buf); err != nil {
			b.Fatal(err)
		}
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "203.0.113.3" {
			b.Fatalf("answer %v, want iad's 203.0.113.3", m.Answer)
		}
	})
}

// checkNearest fails b unless req, answered once more into w, gets the
// one address want.
func checkNearest(b *testing.B, r *Resolver, w *dnstest.Recorder, req *dns.Msg, want string) {
	b.Helper()
	w.Msgs = w.Msgs[:0]
	r.ServeDNS(w, req)
	m := w.Msg()
	if m == nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != want {
		b.Fatalf("reply %v, want the one address %s", m, want)
	}
}

// BenchmarkUDPRoundTrip measures the whole server path: a query written
// to a real UDP socket on loopback, answered by a UDPServer reader, the
// reply read back. ns/op is the round trip (client system calls
// included); allocs/op counts both sides, and the client allocates
// nothing, so it is the server's.
//
//	go test -run '^$' -bench UDPRoundTrip -benchmem ./resolver/
func BenchmarkUDPRoundTrip(b *testing.B) {
	r, _ := newResolver(b, Config{})
	r.Publish(State{Zones: testSet(b), Health: amsDown})
	addr := startServers(b, r)
	for _, bc := range []struct {
		name string
		c    dnstest.Case
	}{
		{"static_A", dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}},
		{"failover_A", dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}},
		{"nxdomain", dnstest.Case{Qname: "nothere.example.org.", Qtype: dns.TypeA}},
		{"general_path_MX", dnstest.Case{Qname: "example.org.", Qtype: dns.TypeMX, UDPSize: 1232,
			Do: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt := packed(b, bc.c)
			if bc.name == "general_path_MX" {
				// An ECS option keeps it off the fast path.
				m := bc.c.Msg()
				m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 8, Address: net.IPv4(10, 0, 0, 0)}}
				pkt, _ = m.Pack()
			}
			udpRoundTrips(b, addr, pkt)
		})
	}
}

// udpRoundTrips sends pkt to addr over UDP and reads the reply, once per
// iteration of b, and returns the last reply.
func udpRoundTrips(b *testing.B, addr string, pkt []byte) []byte {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	n := 0
	for b.Loop() {
		if _, err := conn.Write(pkt); err != nil {
			b.Fatal(err)
		}
		if n, err = conn.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	return buf[:n]
}

// manyServices builds a zone with n failover services, two sites of two
// endpoints each, and the query packets for all of them.
func manyServices(b *testing.B, n int) (*zones.Set, [][]byte) {
	b.Helper()
	soa := parseZone(b, "big.test. 3600 IN SOA ns.big.test. h.big.test. 1 7200 3600 1209600 300")
	svcs := make([]*zones.Service, 0, n)
	pkts := make([][]byte, 0, n)
	for i := range n {
		name := fmt.Sprintf("svc%d.big.test.", i)
		a := func(site, k int) string { return fmt.Sprintf("10.%d.%d.%d", site*2+k, (i>>8)&255, i&255) }
		svcs = append(svcs, &zones.Service{
			Name: name, Policy: zones.Failover, TTL: 20,
			MinHealthy: zones.Threshold{Count: 1}, AllDown: zones.AllDownAll,
			Sites: []zones.ServiceSite{
				{Site: "ams", Endpoints: endpoints(name, "ams", a(0, 0), a(0, 1))},
				{Site: "fra", Endpoints: endpoints(name, "fra", a(1, 0), a(1, 1))},
			},
		})
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		pkt, err := m.Pack()
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
	return zones.NewSet([]*zones.Zone{zones.NewZone("big.test.", "big", soa)}, svcs, ""), pkts
}

// BenchmarkFastPathServices answers failover queries spread over every
// service of sets of 10, 1,000 and 100,000 services (the first site
// down, so each answer is a failover): the cost per query must not grow
// with the number of services. It also reports how long Publish took.
// "services=N" answers one query at a time, "batch/services=N" batches of
// 32 looked at ahead, as the UDP reader does with what recvmmsg returns
// under load; ns/op is per query in both.
//
//	go test -run '^$' -bench FastPathServices -benchmem ./resolver/
func BenchmarkFastPathServices(b *testing.B) {
	for _, batch := range []bool{false, true} {
		for _, n := range []int{10, 1000, 100000} {
			name := fmt.Sprintf("services=%d", n)
			if batch {
				name = "batch/" + name
			}
			b.Run(name, func(b *testing.B) { benchServices(b, n, batch) })
		}
	}
}

func benchServices(b *testing.B, n int, batch bool) {
	set, pkts := manyServices(b, n)
	h := health{}
	for _, svc := range set.Services() {
		for _, ep := range svc.Sites[0].Endpoints {
			h[ep.ID] = false
		}
	}
	r, _ := newResolver(b, Config{})
	start := time.Now()
	r.Publish(State{Zones: set, Health: h})
	publish := time.Since(start)
	// Shuffled, so that consecutive queries touch unrelated memory.
	rng := rand.New(rand.NewPCG(1, 1))
	rng.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
	// The packets one after the other in the order they are
	// asked, as a server's receive buffers hold them: reading a
	// query must not cost a cache miss of its own, which the
	// server does not pay.
	var all []byte
	for _, p := range pkts {
		all = append(all, p...)
	}
	for i, off := 0, 0; i < len(pkts); i++ {
		pkts[i], off = all[off:off+len(pkts[i]):off+len(pkts[i])], off+len(pkts[i])
	}
	rd := &reader{r: r, shard: 1, ahead: ahead{from: aheadFrom}}
	out := make([]byte, 0, 2048)
	runtime.GC() // the garbage of building the set and publishing it
	i, k, size := 0, 0, 1
	if batch {
		size = aheadMax
	}
	for b.Loop() {
		st := r.cur.Load()
		if k == 0 && batch {
			rd.ahead.prepare(st, pkts[i:min(i+size, len(pkts))], rd.shard)
		}
		hit, ok := rd.fast(st, pkts[i], out, k, netip.AddrPort{})
		if !ok {
			b.Fatal("fell back")
		}
		hit.count(rd.shard)
		i, k = i+1, k+1
		if i == len(pkts) {
			i, k = 0, 0
		}
		if k == size {
			k = 0
		}
	}
	b.ReportMetric(float64(publish.Milliseconds()), "publish-ms")
}

// BenchmarkPublish measures Publish with 10,000 and 100,000 services:
// "first" prepacks every reply (a new Resolver each time), "same" is a
// republish of the same zones and health, "flip" one where one service's
// first site goes down or comes back in turn, so that only that service's
// answers are rebuilt.
//
//	go test -run '^$' -bench Publish -benchmem ./resolver/
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		set, _ := manyServices(b, n)
		victim := set.Services()[n/2]
		flipped := health{}
		for _, ep := range victim.Sites[0].Endpoints {
			flipped[ep.ID] = false
		}
		b.Run(fmt.Sprintf("services=%d/first", n), func(b *testing.B) {
			for b.Loop() {
				r, _ := newResolver(b, Config{})
				r.Publish(State{Zones: set, Health: health{}})
			}
		})
		b.Run(fmt.Sprintf("services=%d/same", n), func(b *testing.B) {
			r, _ := newResolver(b, Config{})
			h := health{}
			r.Publish(State{Zones: set, Health: h})
			for b.Loop() {
				r.Publish(State{Zones: set, Health: h})
			}
		})
		b.Run(fmt.Sprintf("services=%d/flip", n), func(b *testing.B) {
			r, _ := newResolver(b, Config{})
			r.Publish(State{Zones: set, Health: health{}})
			i := 0
			for b.Loop() {
				h := health{}
				if i++; i%2 == 1 {
					h = flipped
				}
				r.Publish(State{Zones: set, Health: h})
			}
		})
	}
}

// BenchmarkQueriesDuringPublish measures query latency over real UDP
// sockets while a publisher republishes as fast as it can, each time
// with one more service's first site down (and the one before back up):
// a health change republished under load. Four clients query services
// at random, each waiting for its reply; the p50, p99 and max latency
// are reported with and without the publisher, and the publishes made.
//
//	go test -run '^$' -bench QueriesDuringPublish -benchtime=200000x ./resolver/
func BenchmarkQueriesDuringPublish(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		set, pkts := manyServices(b, n)
		svcs := set.Services()
		for _, publishing := range []bool{false, true} {
			name := fmt.Sprintf("services=%d/idle", n)
			if publishing {
				name = fmt.Sprintf("services=%d/publishing", n)
			}
			b.Run(name, func(b *testing.B) {
				r, _ := newResolver(b, Config{})
				r.Publish(State{Zones: set, Health: health{}})
				addr := startServers(b, r)
				stop := make(chan struct{})
				var publishes int
				pubDone := make(chan struct{})
				go func() {
					defer close(pubDone)
					for i := 0; publishing; i++ {
						select {
						case <-stop:
							return
						default:
						}
						h := health{}
						for _, ep := range svcs[i%len(svcs)].Sites[0].Endpoints {
							h[ep.ID] = false
						}
						r.Publish(State{Zones: set, Health: h})
						publishes++
					}
				}()
				const clients = 4
				lat := make([][]time.Duration, clients)
				errs := make(chan error, clients)
				per := max(b.N/clients, 1)
				b.ResetTimer()
				start := time.Now()
				for c := range clients {
					go func() {
						conn, err := net.Dial("udp", addr)
						if err != nil {
							errs <- err
							return
						}
						defer conn.Close()
						rng := rand.New(rand.NewPCG(uint64(c), 1))
						buf := make([]byte, 4096)
						l := make([]time.Duration, 0, per)
						for range per {
							pkt := pkts[rng.IntN(len(pkts))]
							t0 := time.Now()
							conn.SetReadDeadline(t0.Add(5 * time.Second))
							if _, err := conn.Write(pkt); err != nil {
								errs <- err
								return
							}
							if _, err := conn.Read(buf); err != nil {
								errs <- err
								return
							}
							l = append(l, time.Since(t0))
						}
						lat[c] = l
						errs <- nil
					}()
				}
				for range clients {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				close(stop)
				<-pubDone
				var all []time.Duration
				for _, l := range lat {
					all = append(all, l...)
				}
				slices.Sort(all)
				q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
				b.ReportMetric(q(0.5), "p50-µs")
				b.ReportMetric(q(0.99), "p99-µs")
				b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "queries/s")
				b.ReportMetric(float64(publishes)/elapsed.Seconds(), "publishes/s")
			})
		}
	}
}

// BenchmarkUDPBatch measures the server path under load: a client writes
// 32 queries, for services picked at random among 10, 1,000 or 100,000,
// before reading the 32 replies, so that the server reads and answers
// them in batches. ns/op is per query, the client's system calls
// included; the figure must not grow with the number of services.
//
//	go test -run '^$' -bench UDPBatch -benchmem ./resolver/
func BenchmarkUDPBatch(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			set, pkts := manyServices(b, n)
			r, _ := newResolver(b, Config{})
			r.Publish(State{Zones: set, Health: health{}})
			addr := startServers(b, r)
			conn, err := net.Dial("udp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			rng := rand.New(rand.NewPCG(2, 2))
			buf := make([]byte, 4096)
			runtime.GC()
			const burst = 32
			i := 0
			for b.Loop() {
				if i%burst == 0 {
					for range burst {
						if _, err := conn.Write(pkts[rng.IntN(len(pkts))]); err != nil {
							b.Fatal(err)
						}
					}
				}
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// Replies still owed to the last burst.
			for ; i%burst != 0; i++ {
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
