package resolver

import (
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
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
