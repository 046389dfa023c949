package resolver

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

func testState(t testing.TB) *state {
	t.Helper()
	return newState(State{Zones: testSet(t)}, defaultUDPSize)
}

func TestAnswerPreservesQuestionCase(t *testing.T) {
	req := dnstest.Case{Qname: "MaIl.ExAmPlE.oRg.", Qtype: dns.TypeA}.Msg()
	req.Id = 4242
	req.RecursionDesired = true
	got := answer(testState(t), req, client, false)
	if got.Question[0].Name != "MaIl.ExAmPlE.oRg." {
		t.Errorf("question = %q, want the qname as asked", got.Question[0].Name)
	}
	if got.Id != 4242 || !got.Response || !got.RecursionDesired || got.RecursionAvailable {
		t.Errorf("header = id %d qr %t rd %t ra %t, want id 4242 qr rd, no ra", got.Id, got.Response, got.RecursionDesired, got.RecursionAvailable)
	}
}

// opt returns the OPT record of m, failing when there is more than one.
func opt(t *testing.T, m *dns.Msg) *dns.OPT {
	t.Helper()
	var o *dns.OPT
	for _, rr := range m.Extra {
		if x, ok := rr.(*dns.OPT); ok {
			if o != nil {
				t.Fatalf("reply has two OPT records")
			}
			o = x
		}
	}
	return o
}

func TestAnswerEDNS(t *testing.T) {
	st := testState(t)
	edns := func(size uint16, do bool, version uint8, opts ...dns.EDNS0) *dns.Msg {
		m := dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg()
		m.SetEdns0(size, do)
		o := m.IsEdns0()
		o.SetVersion(version)
		o.Option = opts
		return m
	}
	tests := []struct {
		name    string
		req     *dns.Msg
		rcode   int
		answers int
		// The OPT expected in the reply; size 0: none.
		size uint16
		do   bool
	}{
		{name: "no OPT, none back", req: dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg(), answers: 1},
		{name: "our buffer size", req: edns(4096, false, 0), answers: 1, size: defaultUDPSize},
		{name: "DO echoed", req: edns(1232, true, 0), answers: 1, size: defaultUDPSize, do: true},
		{name: "unknown option ignored", req: edns(1232, false, 0, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2}}), answers: 1, size: defaultUDPSize},
		{name: "version 1 is BADVERS", req: edns(1232, true, 1), rcode: dns.RcodeBadVers, size: defaultUDPSize, do: true},
		{name: "two OPT is FORMERR", req: func() *dns.Msg {
			m := edns(1232, false, 0)
			m.Extra = append(m.Extra, dns.Copy(m.Extra[0]))
			return m
		}(), rcode: dns.RcodeFormatError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := answer(st, tc.req, client, false)
			if got.Rcode != tc.rcode || len(got.Answer) != tc.answers {
				t.Errorf("rcode %s, %d answers; want %s, %d", dns.RcodeToString[got.Rcode], len(got.Answer), dns.RcodeToString[tc.rcode], tc.answers)
			}
			o := opt(t, got)
			switch {
			case tc.size == 0 && o != nil:
				t.Fatalf("reply has OPT %v, want none", o)
			case tc.size == 0:
				return
			case o == nil:
				t.Fatalf("reply has no OPT")
			}
			if o.UDPSize() != tc.size || o.Do() != tc.do || o.Version() != 0 || len(o.Option) != 0 {
				t.Errorf("OPT = size %d do %t version %d options %v, want size %d do %t version 0 no options",
					o.UDPSize(), o.Do(), o.Version(), o.Option, tc.size, tc.do)
			}
			// The extended rcode must survive the wire.
			b, err := got.Pack()
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			back := new(dns.Msg)
			if err := back.Unpack(b); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if back.Rcode != tc.rcode {
				t.Errorf("rcode on the wire = %s, want %s", dns.RcodeToString[back.Rcode], dns.RcodeToString[tc.rcode])
			}
		})
	}
}

// bigState serves big.example.org. with 100 A records.
func bigState(t testing.TB) *state {
	t.Helper()
	rrs := parseZone(t, "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5")
	for i := range 100 {
		rrs = append(rrs, parseZone(t, fmt.Sprintf("big.example.org. 300 IN A 10.0.%d.%d", i/250, i%250+1))...)
	}
	set := zones.NewSet([]*zones.Zone{zones.NewZone("example.org.", "big", rrs)}, nil, "")
	return newState(State{Zones: set}, defaultUDPSize)
}

func TestAnswerTruncation(t *testing.T) {
	st := bigState(t)
	tests := []struct {
		name    string
		udpSize uint16 // 0: no EDNS
		tcp     bool
		limit   int
		tc      bool
	}{
		{name: "UDP without EDNS", limit: 512, tc: true},
		{name: "UDP with a small EDNS size", udpSize: 256, limit: 512, tc: true},
		{name: "UDP with EDNS 1000", udpSize: 1000, limit: 1000, tc: true},
		{name: "UDP with EDNS 4096 is capped by ours", udpSize: 4096, limit: defaultUDPSize, tc: true},
		{name: "TCP", tcp: true, limit: dns.MaxMsgSize},
		{name: "TCP with EDNS", udpSize: 512, tcp: true, limit: dns.MaxMsgSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := dnstest.Case{Qname: "big.example.org.", Qtype: dns.TypeA, UDPSize: tc.udpSize}.Msg()
			got := answer(st, req, client, tc.tcp)
			b, err := got.Pack()
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			if len(b) > tc.limit {
				t.Errorf("reply is %d bytes, want at most %d", len(b), tc.limit)
			}
			if got.Truncated != tc.tc {
				t.Errorf("TC = %t, want %t", got.Truncated, tc.tc)
			}
			if !tc.tc && len(got.Answer) != 100 {
				t.Errorf("%d answers, want 100", len(got.Answer))
			}
			if tc.tc && (len(got.Answer) == 0 || len(got.Answer) == 100) {
				t.Errorf("%d answers, want some but not all", len(got.Answer))
			}
			if tc.udpSize > 0 && opt(t, got) == nil {
				t.Errorf("truncated reply lost its OPT")
			}
		})
	}
}

// TestTruncationOnlyForRequiredData: an MX answer whose 10 records fit,
// but not the addresses of their targets, is sent without those
// addresses and without TC (RFC 2181 §9): TC would send the resolver to
// TCP for nothing. A referral that lost glue is truncated (RFC 9471),
// and an answer section that was cut is.
func TestTruncationOnlyForRequiredData(t *testing.T) {
	text := "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5\n" +
		"example.org. 3600 IN NS ns1.example.org.\nns1.example.org. 3600 IN A 192.0.2.53\n"
	for i := range 10 {
		text += fmt.Sprintf("mx.example.org. 300 IN MX %d mail%d.example.org.\n", i, i)
		for j := range 4 {
			text += fmt.Sprintf("mail%d.example.org. 300 IN AAAA 2001:db8::%d:%d\n", i, i, j)
		}
	}
	for i := range 20 {
		text += fmt.Sprintf("sub.example.org. 3600 IN NS ns%d.sub.example.org.\nns%d.sub.example.org. 3600 IN AAAA 2001:db8:1::%d\n", i, i, i)
	}
	set := zones.NewSet([]*zones.Zone{zones.NewZone("example.org.", "tc", parseZone(t, text))}, nil, "")
	st := newState(State{Zones: set}, defaultUDPSize)

	mx := answer(st, dnstest.Case{Qname: "mx.example.org.", Qtype: dns.TypeMX}.Msg(), client, false)
	if len(mx.Answer) != 10 || mx.Truncated {
		t.Errorf("MX over UDP without EDNS: %d answers, TC %t; want all 10 and no TC", len(mx.Answer), mx.Truncated)
	}
	if len(mx.Extra) == 0 || len(mx.Extra) >= 40 {
		t.Errorf("MX: %d additional records, want some but not all 40", len(mx.Extra))
	}
	if full := answer(st, dnstest.Case{Qname: "mx.example.org.", Qtype: dns.TypeMX}.Msg(), client, true); len(full.Extra) != 40 {
		t.Errorf("MX over TCP: %d additional records, want 40", len(full.Extra))
	}

	ref := answer(st, dnstest.Case{Qname: "www.sub.example.org.", Qtype: dns.TypeA}.Msg(), client, false)
	if !ref.Truncated {
		t.Errorf("referral with %d of 20 NS and %d glue: TC clear, want set", len(ref.Ns), len(ref.Extra))
	}
}

func TestAnswerMalformed(t *testing.T) {
	st := testState(t)
	q := func(f func(m *dns.Msg)) *dns.Msg {
		m := dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg()
		f(m)
		return m
	}
	tests := []struct {
		name      string
		st        *state
		req       *dns.Msg
		rcode     int
		questions int
		noReply   bool
	}{
		{name: "two questions", st: st, req: q(func(m *dns.Msg) {
			m.Question = append(m.Question, dns.Question{Name: "example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		}), rcode: dns.RcodeFormatError},
		{name: "no question", st: st, req: q(func(m *dns.Msg) { m.Question = nil }), rcode: dns.RcodeFormatError},
		{name: "NOTIFY", st: st, req: q(func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), rcode: dns.RcodeNotImplemented, questions: 1},
		{name: "UPDATE", st: st, req: q(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), rcode: dns.RcodeNotImplemented, questions: 1},
		{name: "STATUS", st: st, req: q(func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }), rcode: dns.RcodeNotImplemented, questions: 1},
		{name: "class CH", st: st, req: q(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), rcode: dns.RcodeRefused, questions: 1},
		{name: "a response gets no reply", st: st, req: q(func(m *dns.Msg) { m.Response = true }), noReply: true},
		{name: "nothing published", st: nil, req: q(func(*dns.Msg) {}), rcode: dns.RcodeServerFailure, questions: 1},
		{name: "nothing published, EDNS", st: nil, req: q(func(m *dns.Msg) { m.SetEdns0(4096, false) }), rcode: dns.RcodeServerFailure, questions: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := answer(tc.st, tc.req, client, false)
			if tc.noReply {
				if got != nil {
					t.Fatalf("answer = %v, want no reply", got)
				}
				return
			}
			if got.Rcode != tc.rcode || len(got.Question) != tc.questions || got.Authoritative ||
				len(got.Answer)+len(got.Ns) != 0 || !got.Response || got.Opcode != tc.req.Opcode {
				t.Errorf("reply = %s, %d questions, aa %t, %d answers, %d authority, qr %t, opcode %d; want %s, %d questions, no aa, no data, qr, opcode %d",
					dns.RcodeToString[got.Rcode], len(got.Question), got.Authoritative, len(got.Answer), len(got.Ns), got.Response, got.Opcode,
					dns.RcodeToString[tc.rcode], tc.questions, tc.req.Opcode)
			}
		})
	}
}

func TestAnswerTransfer(t *testing.T) {
	set := testSet(t)
	st := newState(State{Zones: set}, defaultUDPSize)
	org := set.Zone("example.org.")
	// A secondary gets every endpoint of every service (fail open) after
	// the static data: without them it answered NXDOMAIN for services.
	full := slices.Clone(org.Records())
	for _, rr := range []string{
		"*.svcwild.example.org. 30 IN A 192.0.2.41",
		"strict.example.org. 10 IN A 192.0.2.31", "strict.example.org. 10 IN A 192.0.2.32",
		"www.example.org. 20 IN A 192.0.2.1", "www.example.org. 20 IN A 192.0.2.2",
		"www.example.org. 20 IN A 198.51.100.1", "www.example.org. 20 IN A 198.51.100.2",
		"www.example.org. 20 IN AAAA 2001:db8::1",
	} {
		full = append(full, parseZone(t, rr)...)
	}
	full = append(full, org.SOA)
	soaOnly := []dns.RR{org.SOA}
	allowed, other := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("198.51.100.9")
	ixfr := func(serial uint32) *dns.Msg {
		m := new(dns.Msg)
		m.SetIxfr("example.org.", serial, "ns1.example.org.", "hostmaster.example.org.")
		return m
	}
	axfr := func(zone string) *dns.Msg {
		m := new(dns.Msg)
		m.SetAxfr(zone)
		return m
	}
	tests := []struct {
		name   string
		req    *dns.Msg
		client netip.Addr
		tcp    bool
		rcode  int
		want   []dns.RR
	}{
		{name: "AXFR over TCP from an allowed client", req: axfr("example.org."), client: allowed, tcp: true, want: full},
		{name: "AXFR qname case does not matter", req: axfr("Example.ORG."), client: allowed, tcp: true, want: full},
		{name: "IPv4-mapped client is allowed", req: axfr("example.org."), client: netip.MustParseAddr("::ffff:192.0.2.9"), tcp: true, want: full},
		{name: "AXFR over UDP", req: axfr("example.org."), client: allowed, rcode: dns.RcodeRefused},
		{name: "AXFR from another client", req: axfr("example.org."), client: other, tcp: true, rcode: dns.RcodeRefused},
		{name: "AXFR of a zone without ACL", req: axfr("example.net."), client: allowed, tcp: true, rcode: dns.RcodeRefused},
		{name: "AXFR of a name below the apex", req: axfr("mail.example.org."), client: allowed, tcp: true, rcode: dns.RcodeRefused},
		{name: "AXFR outside our zones", req: axfr("example.com."), client: allowed, tcp: true, rcode: dns.RcodeRefused},
		{name: "IXFR from an old serial gets the whole zone", req: ixfr(2023000000), client: allowed, tcp: true, want: full},
		{name: "IXFR at our serial gets the SOA", req: ixfr(2024010101), client: allowed, tcp: true, want: soaOnly},
		{name: "IXFR over UDP", req: ixfr(1), client: allowed, rcode: dns.RcodeRefused},
		{name: "IXFR from another client", req: ixfr(1), client: other, tcp: true, rcode: dns.RcodeRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, in := respond(st, tc.req, tc.client, tc.tcp)
			if got.Rcode != tc.rcode {
				t.Fatalf("rcode = %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.rcode != dns.RcodeSuccess {
				if len(got.Answer) != 0 || got.Authoritative || in.transfer {
					t.Errorf("refusal has %d answers, aa %t, transfer %t", len(got.Answer), got.Authoritative, in.transfer)
				}
				return
			}
			if !got.Authoritative || !in.transfer {
				t.Errorf("aa %t transfer %t, want both", got.Authoritative, in.transfer)
			}
			if g, w := rrStrings(got.Answer), rrStrings(tc.want); !slices.Equal(g, w) {
				t.Errorf("answer =\n%v\nwant\n%v", g, w)
			}
			// What a secondary gets does not depend on health: the serial
			// would not say that it changed.
			down := newState(State{Zones: set, Health: allDown{}}, defaultUDPSize)
			if g, w := rrStrings(answer(down, tc.req, tc.client, tc.tcp).Answer), rrStrings(tc.want); !slices.Equal(g, w) {
				t.Errorf("with every endpoint down, answer =\n%v\nwant\n%v", g, w)
			}
		})
	}
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

func TestEnvelopes(t *testing.T) {
	soa := dnstest.RRs(t, "example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5")[0]
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'x'
	}
	m := new(dns.Msg)
	m.SetAxfr("example.org.")
	m.Response, m.Authoritative = true, true
	m.SetEdns0(1232, false)
	m.Answer = []dns.RR{soa}
	for i := range 2000 {
		txt := &dns.TXT{Hdr: dns.RR_Header{Name: fmt.Sprintf("t%d.example.org.", i), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{string(long)}}
		m.Answer = append(m.Answer, txt)
	}
	m.Answer = append(m.Answer, soa)

	envs := envelopes(m)
	if len(envs) < 2 {
		t.Fatalf("%d envelopes for %d RRs of 250 bytes, want several", len(envs), len(m.Answer))
	}
	var all []dns.RR
	for i, e := range envs {
		b, err := e.Pack()
		if err != nil {
			t.Fatalf("envelope %d: Pack: %v", i, err)
		}
		if len(b) > dns.MaxMsgSize {
			t.Errorf("envelope %d is %d bytes", i, len(b))
		}
		if e.Id != m.Id || !e.Authoritative || len(e.Question) != 1 {
			t.Errorf("envelope %d: id %d aa %t %d questions", i, e.Id, e.Authoritative, len(e.Question))
		}
		if hasOPT := e.IsEdns0() != nil; hasOPT != (i == 0) {
			t.Errorf("envelope %d: OPT %t, want only in the first", i, hasOPT)
		}
		all = append(all, e.Answer...)
	}
	if !slices.Equal(all, m.Answer) {
		t.Errorf("envelopes carry %d RRs, want the %d of the reply in order", len(all), len(m.Answer))
	}

	one := new(dns.Msg)
	one.SetAxfr("example.org.")
	if envs := envelopes(one); len(envs) != 1 {
		t.Errorf("envelopes of an empty answer = %d messages, want 1", len(envs))
	}
}
