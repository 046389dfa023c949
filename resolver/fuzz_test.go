package resolver

import (
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// FuzzServeDNS runs every message that unpacks through the handler over
// UDP and TCP. The handler recovers panics, so the test fails on the panic
// counter rather than on a crash; every reply must also pack.
func FuzzServeDNS(f *testing.F) {
	for _, c := range []dnstest.Case{
		{Qname: "www.example.org.", Qtype: dns.TypeA},
		{Qname: "WWW.example.org.", Qtype: dns.TypeAAAA, UDPSize: 4096, Do: true},
		{Qname: "chain.example.org.", Qtype: dns.TypeA},
		{Qname: "foo.wild.example.org.", Qtype: dns.TypeANY},
		{Qname: "x.sub.example.org.", Qtype: dns.TypeDS},
		{Qname: "example.org.", Qtype: dns.TypeAXFR},
		{Qname: "example.org.", Qtype: dns.TypeMX, UDPSize: 512},
	} {
		b, err := c.Msg().Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r, _ := newResolver(f, Config{})
	r.Publish(State{Zones: testSet(f), Health: down("www.example.org/ams/192.0.2.1")})

	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		for _, w := range []*dnstest.Recorder{dnstest.NewRecorder("192.0.2.9"), dnstest.NewTCPRecorder("192.0.2.9")} {
			w.Pack = true
			r.ServeDNS(w, req)
			if n := testutil.ToFloat64(r.m.panics); n != 0 {
				t.Fatalf("handler panicked on %v", req)
			}
			for _, m := range w.Msgs {
				if _, err := m.Pack(); err != nil {
					t.Fatalf("reply to %v does not pack: %v", req, err)
				}
			}
		}
	})
}
