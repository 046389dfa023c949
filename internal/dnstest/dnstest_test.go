package dnstest

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// echo answers every query with one A record naming the transport.
type echo struct{}

func (echo) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	ip := "192.0.2.1"
	if w.RemoteAddr().Network() == "tcp" {
		ip = "192.0.2.2"
	}
	rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A " + ip)
	m.Answer = append(m.Answer, rr)
	w.WriteMsg(m)
}

func TestStartServesUDPAndTCP(t *testing.T) {
	addr := Start(t, echo{})
	for _, tc := range []struct{ network, want string }{
		{"udp", "example.org. 60 IN A 192.0.2.1"},
		{"tcp", "example.org. 60 IN A 192.0.2.2"},
	} {
		c := Case{Qname: "example.org.", Qtype: dns.TypeA, Answer: []string{tc.want}}
		c.Check(t, Exchange(t, tc.network, addr, c.Msg()))
	}
}

func TestRecorder(t *testing.T) {
	w := NewTCPRecorder("192.0.2.9")
	echo{}.ServeDNS(w, Case{Qname: "a.example.", Qtype: dns.TypeA}.Msg())
	if got := len(w.Msgs); got != 1 {
		t.Fatalf("len(Msgs) = %d, want 1", got)
	}
	Case{Qname: "a.example.", Qtype: dns.TypeA, Answer: []string{"a.example. 60 A 192.0.2.2"}}.Check(t, w.Msg())
	if got, want := w.RemoteAddr().String(), "192.0.2.9:40000"; got != want {
		t.Errorf("RemoteAddr() = %s, want %s", got, want)
	}
}

func TestDiff(t *testing.T) {
	got := new(dns.Msg)
	got.Rcode = dns.RcodeNameError
	got.Answer = RRs(t, "a.example. 60 IN A 192.0.2.1", "a.example. 60 IN A 192.0.2.3")
	c := Case{
		Rcode:  dns.RcodeSuccess,
		Answer: []string{"a.example. 60 IN A 192.0.2.1", "a.example. 30 IN A 192.0.2.3"},
	}
	d := c.Diff(got)
	for _, want := range []string{
		"rcode: -NOERROR +NXDOMAIN",
		"  -a.example.\t30\tIN\tA\t192.0.2.3",
		"  +a.example.\t60\tIN\tA\t192.0.2.3",
		"   a.example.\t60\tIN\tA\t192.0.2.1",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Diff() = %q, want it to contain %q", d, want)
		}
	}
	got.Rcode = dns.RcodeSuccess
	got.Answer = RRs(t, "a.example. 30 IN A 192.0.2.3", "a.example. 60 IN A 192.0.2.1")
	if d := c.Diff(got); d != "" {
		t.Errorf("Diff() of an equal reply = %q, want \"\"", d)
	}
}
