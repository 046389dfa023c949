package resolver

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// packedReply is the reply to name/A as the general path packs it.
func packedReply(t testing.TB, name string, rcode int) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Response, m.Rcode = true, rcode
	if rcode == dns.RcodeSuccess {
		rr, _ := dns.NewRR(name + " 30 IN A 192.0.2.1")
		m.Answer = []dns.RR{rr}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRRLAccounts(t *testing.T) {
	now := time.Unix(1000, 0)
	l, err := newRRL(RRLConfig{ResponsesPerSecond: 10, Window: 3 * time.Second, Slip: 2}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return now }
	l.epoch = now
	send := func(client string, reply []byte, n int) (sent, slipped, dropped int) {
		for range n {
			b := l.limit(0, netip.MustParseAddr(client), slices.Clone(reply))
			switch {
			case b == nil:
				dropped++
			case b[2]&0x02 != 0:
				slipped++
				m := new(dns.Msg)
				if err := m.Unpack(b); err != nil || !m.Truncated || len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 || len(m.Question) != 1 {
					t.Fatalf("slipped reply %v (%v): want an empty truncated reply with the question", m, err)
				}
			default:
				sent++
			}
		}
		return
	}
	www := packedReply(t, "www.example.org.", dns.RcodeSuccess)
	if s, sl, d := send("192.0.2.1", www, 100); s != 10 || sl != 45 || d != 45 {
		t.Errorf("100 identical responses to one client in a second: %d sent, %d slipped, %d dropped; want 10, 45, 45", s, sl, d)
	}
	// The same /24 shares the account; another /24, another response and
	// another /56 do not.
	if s, _, _ := send("192.0.2.200", www, 5); s != 0 {
		t.Errorf("same /24: %d sent, want 0", s)
	}
	if s, _, _ := send("192.0.3.1", www, 10); s != 10 {
		t.Errorf("another /24: %d of 10 sent", s)
	}
	if s, _, _ := send("192.0.2.1", packedReply(t, "mail.example.org.", dns.RcodeSuccess), 10); s != 10 {
		t.Errorf("another response: %d of 10 sent", s)
	}
	// Random names under a zone get the same NXDOMAIN: one account.
	nx := 0
	for i := range 30 {
		r := packedReply(t, "x"+string(rune('a'+i%26))+".example.org.", dns.RcodeNameError)
		s, _, _ := send("192.0.2.1", r, 1)
		nx += s
	}
	if nx != 10 {
		t.Errorf("30 NXDOMAIN for different names: %d sent, want 10", nx)
	}
	if s, _, _ := send("2001:db8:1:ff::1", www, 10); s != 10 {
		t.Errorf("IPv6 client: %d of 10 sent", s)
	}
	if s, _, _ := send("2001:db8:1:2::1", www, 10); s != 0 {
		t.Errorf("same IPv6 /56: %d sent, want 0", s)
	}

	// A flooder owes up to Window: one second later it is still over.
	now = now.Add(time.Second)
	if s, _, _ := send("192.0.2.1", www, 10); s != 0 {
		t.Errorf("a second after the flood: %d sent, want 0 (the debt is 3s of responses)", s)
	}
	// Quiet for the window, it is answered again at the full rate.
	now = now.Add(5 * time.Second)
	if s, _, _ := send("192.0.2.1", www, 12); s != 10 {
		t.Errorf("after a quiet window: %d of 12 sent, want 10", s)
	}
}

func TestRRLOffAndNoAllocs(t *testing.T) {
	var off *rrl
	b := packedReply(t, "www.example.org.", 0)
	if got := off.limit(0, netip.MustParseAddr("192.0.2.1"), b); len(got) != len(b) {
		t.Error("a nil limiter changed the reply")
	}
	l, err := newRRL(RRLConfig{ResponsesPerSecond: 5, Slip: 2}, 1, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := netip.MustParseAddr("192.0.2.1")
	buf := make([]byte, len(b))
	if n := testing.AllocsPerRun(1000, func() {
		copy(buf, b)
		l.limit(0, c, buf)
	}); n != 0 {
		t.Errorf("limit allocates %v times per response, want 0", n)
	}
}

// TestRRLFlood floods the UDP server from one client address, bounded in
// count and time, while a second client, in another /24, asks the same
// question 200 times. The flooder gets about the rate in answers, and
// truncated replies or nothing for the rest; the second client's answers
// all come. Its latency with and without the flood is logged (run with
// -v): figures, not assertions.
func TestRRLFlood(t *testing.T) {
	reg := prometheus.NewRegistry()
	const rate = 1000
	r, err := New(Config{RRL: RRLConfig{ResponsesPerSecond: rate, Window: 5 * time.Second, Slip: 2}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Publish(State{Zones: testSet(t)})
	addr := startServers(t, r)
	server := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))

	q := new(dns.Msg)
	q.SetQuestion("www.example.org.", dns.TypeA)
	pkt, _ := q.Pack()

	// The second client: 200 queries, one every 2ms, within the rate.
	measure := func() (p50, p99 time.Duration, lost int) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.1.0.3")}, server)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var lat []time.Duration
		buf := make([]byte, 1500)
		for range 200 {
			start := time.Now()
			if _, err := c.Write(pkt); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil {
				lost++
				continue
			}
			lat = append(lat, time.Since(start))
			time.Sleep(2*time.Millisecond - time.Since(start))
		}
		slices.Sort(lat)
		if len(lat) == 0 {
			return 0, 0, lost
		}
		return lat[len(lat)/2], lat[len(lat)*99/100], lost
	}
	p50, p99, lost := measure()
	t.Logf("second client without flood: p50 %v p99 %v, %d of 200 lost", p50, p99, lost)

	// The flood: at most 100,000 queries or 3 seconds from 127.0.0.2,
	// replies counted by a reader.
	fc, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}, server)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	var answered, truncated int
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 1500)
		for {
			_ = fc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := fc.Read(buf)
			if err != nil {
				return
			}
			if n > 2 && buf[2]&0x02 != 0 {
				truncated++
			} else {
				answered++
			}
		}
	}()
	stop := make(chan struct{})
	sentc := make(chan int)
	started := make(chan struct{})
	go func() {
		sent := 0
		deadline := time.Now().Add(3 * time.Second)
		for sent < 100000 && time.Now().Before(deadline) {
			select {
			case <-stop:
				sentc <- sent
				return
			default:
			}
			if _, err := fc.Write(pkt); err == nil {
				sent++
			}
			if sent == 2000 {
				close(started)
			}
		}
		if sent < 2000 {
			close(started)
		}
		<-stop
		sentc <- sent
	}()
	<-started
	floodStart := time.Now()
	fp50, fp99, flost := measure()
	close(stop)
	sent := <-sentc
	elapsed := time.Since(floodStart)
	<-readerDone
	dropped := metricValue(t, reg, "gslb_dns_rrl_dropped_total")
	slipped := metricValue(t, reg, "gslb_dns_rrl_slipped_total")
	t.Logf("second client during flood: p50 %v p99 %v, %d of 200 lost", fp50, fp99, flost)
	t.Logf("flooder: %d sent, %d answered, %d truncated; RRL dropped %v, slipped %v", sent, answered, truncated, dropped, slipped)

	if lost > 0 || flost > 20 {
		t.Errorf("second client lost %d answers without the flood and %d of 200 during it", lost, flost)
	}
	if limit := rate + int(elapsed.Seconds()+3)*rate; answered > limit {
		t.Errorf("flooder got %d full answers, want at most about the rate (%d)", answered, limit)
	}
	if sent > 2*rate+2*int(elapsed.Seconds()+3)*rate && (truncated == 0 || dropped == 0) {
		t.Errorf("flooder sent %d: %d truncated replies, %v dropped, want both", sent, truncated, dropped)
	}
}

// metricValue returns the value of the counter name registered with reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// BenchmarkRRL is the cost RRL adds to one UDP response, under the limit
// (many clients) and over it (one client).
func BenchmarkRRL(b *testing.B) {
	reply := packedReply(b, "www.example.org.", dns.RcodeSuccess)
	for _, bc := range []struct {
		name    string
		clients int
	}{{"many clients", 1 << 16}, {"one flooding client", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := newRRL(RRLConfig{ResponsesPerSecond: 100, Slip: 2}, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, len(reply))
			addrs := make([]netip.Addr, bc.clients)
			for i := range addrs {
				addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				copy(buf, reply)
				l.limit(0, addrs[i%len(addrs)], buf)
			}
		})
	}
}
