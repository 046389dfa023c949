package resolver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startResolver serves st's zones on 127.0.0.1 over UDP and TCP, as
// gslbd does: a UDPServer on two sockets sharing the port, miekg's server
// with Accept for TCP.
func startResolver(t *testing.T, s State) string {
	t.Helper()
	r, _ := newResolver(t, Config{})
	r.Publish(s)
	return startServers(t, r)
}

func startServers(t testing.TB, r *Resolver) string {
	t.Helper()
	var conns []*net.UDPConn
	var ln net.Listener
	for range 20 {
		var err error
		if conns, err = ListenUDP("127.0.0.1:0", 2); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", conns[0].LocalAddr().String()); err == nil {
			break
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	if conns == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	udp := r.NewUDPServer(conns, 0)
	tcp := &dns.Server{Listener: ln, Handler: r, MsgAcceptFunc: Accept}
	done := make(chan error, 2)
	udpStarted, tcpStarted := make(chan struct{}), make(chan struct{})
	tcp.NotifyStartedFunc = func() { close(tcpStarted) }
	go func() { done <- udp.Serve(func() { close(udpStarted) }) }()
	go func() { done <- tcp.ActivateAndServe() }()
	for _, c := range []chan struct{}{udpStarted, tcpStarted} {
		select {
		case <-c:
		case err := <-done:
			t.Fatalf("serve: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := udp.Shutdown(ctx); err != nil {
			t.Errorf("UDP shutdown: %v", err)
		}
		if err := tcp.ShutdownContext(ctx); err != nil {
			t.Errorf("TCP shutdown: %v", err)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	return udp.Addr().String()
}

func TestWireUDPAndTCP(t *testing.T) {
	addr := startResolver(t, State{Zones: testSet(t), Health: amsDown})
	cases := []dnstest.Case{
		{Qname: "mail.example.org.", Qtype: dns.TypeA, Authoritative: true, Answer: []string{mailA}},
		{Qname: "www.example.org.", Qtype: dns.TypeA, UDPSize: 1232, Authoritative: true, Answer: []string{
			"www.example.org. 20 IN A 198.51.100.1", "www.example.org. 20 IN A 198.51.100.2",
		}},
		{Qname: "nothere.example.org.", Qtype: dns.TypeA, Do: true, Authoritative: true, Rcode: dns.RcodeNameError, Ns: []string{orgSOA}},
		{Qname: "www.sub.example.org.", Qtype: dns.TypeA,
			Ns:    []string{"sub.example.org. 3600 IN NS ns.sub.example.org.", "sub.example.org. 3600 IN NS ns.example.net."},
			Extra: []string{"ns.sub.example.org. 3600 IN A 192.0.2.100", "ns.example.net. 3600 IN A 203.0.113.53"}},
		{Qname: "example.com.", Qtype: dns.TypeA, Rcode: dns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range cases {
			t.Run(network+" "+c.Qname, func(t *testing.T) {
				got := dnstest.Exchange(t, network, addr, c.Msg())
				c.Check(t, got)
				if (c.UDPSize > 0 || c.Do) != (got.IsEdns0() != nil) {
					t.Errorf("OPT in reply = %v, want one exactly when the query had one", got.IsEdns0())
				}
			})
		}
	}
}

func TestWireTruncationThenTCP(t *testing.T) {
	rrs := parseZone(t, "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5")
	for i := range 100 {
		rrs = append(rrs, &dns.A{
			Hdr: dns.RR_Header{Name: "big.example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A:   net.IPv4(10, 0, byte(i/250), byte(i%250+1)),
		})
	}
	set := zones.NewSet([]*zones.Zone{zones.NewZone("example.org.", "big", rrs)}, nil, "")
	addr := startResolver(t, State{Zones: set})

	for _, size := range []uint16{0, 1232, 4096} {
		q := dnstest.Case{Qname: "big.example.org.", Qtype: dns.TypeA, UDPSize: size}.Msg()
		udp := dnstest.Exchange(t, "udp", addr, q)
		if !udp.Truncated || len(udp.Answer) >= 100 {
			t.Errorf("UDP, EDNS %d: TC %t with %d answers, want TC and fewer than 100", size, udp.Truncated, len(udp.Answer))
		}
		tcp := dnstest.Exchange(t, "tcp", addr, q)
		if tcp.Truncated || len(tcp.Answer) != 100 {
			t.Errorf("TCP, EDNS %d: TC %t with %d answers, want all 100", size, tcp.Truncated, len(tcp.Answer))
		}
	}
}

func TestWireAXFR(t *testing.T) {
	set := testSet(t) // example.org allows 127.0.0.1; example.net allows nobody
	addr := startResolver(t, State{Zones: set})

	req := new(dns.Msg)
	req.SetAxfr("example.org.")
	tr := &dns.Transfer{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second}
	ch, err := tr.In(req, addr)
	if err != nil {
		t.Fatalf("AXFR: %v", err)
	}
	var got []dns.RR
	for env := range ch {
		if env.Error != nil {
			t.Fatalf("AXFR envelope: %v", env.Error)
		}
		got = append(got, env.RR...)
	}
	want := append(append([]dns.RR{}, set.Zone("example.org.").Records()...), serviceRecords(set, set.Zone("example.org."))...)
	want = append(want, set.Zone("example.org.").SOA)
	if g, w := rrStrings(got), rrStrings(want); len(g) != len(w) || g[0] != w[0] || g[len(g)-1] != w[0] {
		t.Errorf("AXFR got %d RRs (first %q, last %q), want %d framed by %q", len(g), g[0], g[len(g)-1], len(w), w[0])
	}

	refused := new(dns.Msg)
	refused.SetAxfr("example.net.")
	dnstest.Case{Rcode: dns.RcodeRefused}.Check(t, dnstest.Exchange(t, "tcp", addr, refused))
	dnstest.Case{Rcode: dns.RcodeRefused}.Check(t, dnstest.Exchange(t, "udp", addr, req))
}

// TestWireMalformed sends what a hostile or broken client sends. Some get
// FORMERR or NOTIMP, others are dropped; the server must keep answering
// either way.
func TestWireMalformed(t *testing.T) {
	addr := startResolver(t, State{Zones: testSet(t)})
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatalf("Pack: %v", err)
		}
		return b
	}
	base := func(id uint16) *dns.Msg {
		m := dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg()
		m.Id = id
		return m
	}
	twoQuestions := base(2)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	noQuestion := base(3)
	noQuestion.Question = nil
	update := base(4)
	update.Opcode = dns.OpcodeUpdate
	notify := base(5)
	notify.Opcode = dns.OpcodeNotify
	status := base(6)
	status.Opcode = dns.OpcodeStatus
	response := base(7)
	response.Response = true
	truncatedPacket := pack(base(8))[:20]
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 64)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	junk[2] &^= 0x80 // a query, so that the accept func looks further

	tests := []struct {
		name   string
		packet []byte
		id     uint16
		rcode  int // -1: no reply
	}{
		{"two questions", pack(twoQuestions), 2, dns.RcodeFormatError},
		{"no question", pack(noQuestion), 3, dns.RcodeFormatError},
		{"UPDATE", pack(update), 4, dns.RcodeNotImplemented},
		{"NOTIFY", pack(notify), 5, dns.RcodeNotImplemented},
		{"STATUS", pack(status), 6, dns.RcodeNotImplemented},
		{"a response", pack(response), 7, -1},
		{"cut short", truncatedPacket, 8, dns.RcodeFormatError},
		{"three bytes", []byte{1, 2, 3}, 0, -1},
		{"random bytes", junk, uint16(junk[0])<<8 | uint16(junk[1]), -2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Write(tc.packet); err != nil {
				t.Fatal(err)
			}
			// A good query behind each bad one: its reply proves the server is
			// alive, and replies are matched by ID so ordering does not matter.
			probe := base(uint16(1000 + i))
			if _, err := conn.Write(pack(probe)); err != nil {
				t.Fatal(err)
			}
			gotBad, gotProbe := false, false
			buf := make([]byte, 65535)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for !gotProbe || (tc.rcode >= 0 && !gotBad) {
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("read: %v (reply to the bad packet %t, to the probe %t)", err, gotBad, gotProbe)
				}
				m := new(dns.Msg)
				if err := m.Unpack(buf[:n]); err != nil {
					t.Fatalf("unpack reply: %v", err)
				}
				switch m.Id {
				case probe.Id:
					gotProbe = true
					dnstest.Case{Authoritative: true, Answer: []string{mailA}}.Check(t, m)
				case tc.id:
					gotBad = true
					if tc.rcode == -1 {
						t.Errorf("reply %s to a packet that must be dropped", dns.RcodeToString[m.Rcode])
					}
					if tc.rcode >= 0 && m.Rcode != tc.rcode {
						t.Errorf("rcode = %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
					}
				default:
					t.Errorf("reply with unexpected ID %d", m.Id)
				}
			}
		})
	}
}

// TestWireUDPMatchesGeneral sends random queries over a real socket and
// requires, byte for byte, the reply the general path builds.
func TestWireUDPMatchesGeneral(t *testing.T) {
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t), Health: amsDown})
	addr := startServers(t, r)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	rng := rand.New(rand.NewPCG(3, 4))
	names := queryNames(testSet(t))
	buf := make([]byte, 65535)
	for range 300 {
		pkt := randomQuery(rng, names)
		req := new(dns.Msg)
		if req.Unpack(pkt) != nil {
			continue
		}
		want := general(t, r.cur.Load(), pkt, local)
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no reply to %v: %v", req, err)
		}
		if !bytes.Equal(buf[:n], want) {
			got := new(dns.Msg)
			_ = got.Unpack(buf[:n])
			t.Errorf("reply over UDP differs from the general path\nquery:\n%v\ngot:\n%v", req, got)
		}
	}
}

// TestWireWildcardSource binds the wildcard address and queries it on
// 127.0.0.2: the reply must come from 127.0.0.2, or a client (which only
// accepts replies from where it sent) never sees it.
func TestWireWildcardSource(t *testing.T) {
	conns, err := ListenUDP("0.0.0.0:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t)})
	srv := r.NewUDPServer(conns, 0)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() { done <- srv.Serve(func() { close(started) }) }()
	<-started
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	port := conns[0].LocalAddr().(*net.UDPAddr).Port
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		for _, qname := range []string{"mail.example.org.", "nothere.example.org."} { // fast path, and not
			m := dnstest.Case{Qname: qname, Qtype: dns.TypeA}.Msg()
			if qname == "nothere.example.org." {
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 8, Address: net.IPv4(10, 0, 0, 0)}}
			}
			got := dnstest.Exchange(t, "udp", net.JoinHostPort(ip, strconv.Itoa(port)), m)
			if !got.Authoritative {
				t.Errorf("%s via %s: not authoritative: %v", qname, ip, got)
			}
		}
	}
}

// TestWireUDPPanic: a query that panics is answered SERVFAIL and counted;
// the server keeps answering.
func TestWireUDPPanic(t *testing.T) {
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t), Health: panicHealth{}})
	addr := startServers(t, r)
	got := dnstest.Exchange(t, "udp", addr, dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}.Msg())
	dnstest.Case{Rcode: dns.RcodeServerFailure}.Check(t, got)
	got = dnstest.Exchange(t, "udp", addr, dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg())
	dnstest.Case{Authoritative: true, Answer: []string{mailA}}.Check(t, got)
	if n := testutil.ToFloat64(r.m.panics); n != 1 {
		t.Errorf("panics = %v, want 1", n)
	}
}

// TestWireUDPBurstMatchesGeneral sends random queries from several
// clients in bursts, without waiting for replies, so that the readers
// receive and answer them in batches, and requires for every one the
// reply the general path builds, byte for byte.
func TestWireUDPBurstMatchesGeneral(t *testing.T) {
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t), Health: amsDown})
	addr := startServers(t, r)
	rng := rand.New(rand.NewPCG(5, 6))
	names := queryNames(testSet(t))
	buf := make([]byte, 65535)
	for c := range 4 {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
		want := map[uint16][]byte{}
		for id := range uint16(150) {
			pkt := randomQuery(rng, names)
			pkt[0], pkt[1] = byte(id>>8), byte(id)
			req := new(dns.Msg)
			if req.Unpack(pkt) != nil {
				continue
			}
			if m := answer(r.cur.Load(), req, local, false); m == nil {
				continue
			}
			want[id] = general(t, r.cur.Load(), pkt, local)
			if _, err := conn.Write(pkt); err != nil {
				t.Fatal(err)
			}
		}
		for len(want) > 0 {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("client %d: %d replies missing: %v", c, len(want), err)
			}
			id := uint16(buf[0])<<8 | uint16(buf[1])
			w, ok := want[id]
			if !ok {
				t.Fatalf("client %d: unexpected or second reply with ID %d", c, id)
			}
			delete(want, id)
			if !bytes.Equal(buf[:n], w) {
				got, exp := new(dns.Msg), new(dns.Msg)
				_ = got.Unpack(buf[:n])
				_ = exp.Unpack(w)
				t.Errorf("reply differs from the general path\ngot:\n%v\nwant:\n%v", got, exp)
			}
		}
	}
}
