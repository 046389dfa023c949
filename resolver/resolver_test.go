package resolver

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newResolver(t testing.TB, cfg Config) (*Resolver, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := New(cfg, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, reg
}

// serve runs one query through ServeDNS and returns the messages written.
func serve(r *Resolver, w *dnstest.Recorder, req *dns.Msg) []*dns.Msg {
	w.Reset()
	r.ServeDNS(w, req)
	return w.Msgs
}

func TestServeBeforePublish(t *testing.T) {
	r, _ := newResolver(t, Config{})
	w := dnstest.NewRecorder("192.0.2.9")
	msgs := serve(r, w, dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg())
	if len(msgs) != 1 {
		t.Fatalf("%d messages written, want 1", len(msgs))
	}
	dnstest.Case{Rcode: dns.RcodeServerFailure}.Check(t, msgs[0])
}

func TestPublish(t *testing.T) {
	r, reg := newResolver(t, Config{})
	w := dnstest.NewRecorder("192.0.2.9")
	query := dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}.Msg()

	if gen := r.Publish(State{Zones: testSet(t)}); gen != 1 {
		t.Errorf("first Publish = %d, want 1", gen)
	}
	dnstest.Case{Authoritative: true, Answer: wwwAms}.Check(t, serve(r, w, query)[0])

	if gen := r.Publish(State{Zones: testSet(t), Health: amsDown}); gen != 2 {
		t.Errorf("second Publish = %d, want 2", gen)
	}
	dnstest.Case{Authoritative: true, Answer: []string{
		"www.example.org. 20 IN A 198.51.100.1", "www.example.org. 20 IN A 198.51.100.2",
	}}.Check(t, serve(r, w, query)[0])

	if got := testutil.ToFloat64(r.m.generation); got != 2 {
		t.Errorf("publish_generation = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "gslb_resolver_publish_generation"); err != nil || n != 1 {
		t.Errorf("publish_generation series = %d, %v", n, err)
	}
}

func TestNewRejectsDoubleRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, reg); err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := New(Config{}, reg); err == nil {
		t.Errorf("second New on the same registry succeeded, want an error")
	}
	if _, err := New(Config{}, nil); err != nil {
		t.Errorf("New with a nil registerer: %v", err)
	}
}

func TestConfigUDPSize(t *testing.T) {
	for _, tc := range []struct{ cfg, want uint16 }{{0, 1232}, {100, 512}, {1400, 1400}, {4096, 4096}} {
		r, _ := newResolver(t, Config{UDPSize: tc.cfg})
		r.Publish(State{Zones: testSet(t)})
		w := dnstest.NewRecorder("192.0.2.9")
		got := serve(r, w, dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA, UDPSize: 4096}.Msg())[0]
		if o := got.IsEdns0(); o == nil || o.UDPSize() != tc.want {
			t.Errorf("UDPSize %d: OPT %v, want size %d", tc.cfg, o, tc.want)
		}
	}
}

func TestServeTransferWritesEnvelopes(t *testing.T) {
	r, _ := newResolver(t, Config{})
	set := testSet(t)
	r.Publish(State{Zones: set})
	req := new(dns.Msg)
	req.SetAxfr("example.org.")

	w := dnstest.NewTCPRecorder("192.0.2.9")
	w.Pack = true
	msgs := serve(r, w, req)
	var got []dns.RR
	for _, m := range msgs {
		got = append(got, m.Answer...)
	}
	// The static records, every endpoint of the zone's services, the SOA.
	want := len(set.Zone("example.org.").Records()) + len(serviceRecords(set, set.Zone("example.org."))) + 1
	if len(got) != want || got[0].Header().Rrtype != dns.TypeSOA || got[len(got)-1].Header().Rrtype != dns.TypeSOA {
		t.Errorf("transfer of %d RRs in %d messages, want %d RRs framed by the SOA", len(got), len(msgs), want)
	}

	udp := dnstest.NewRecorder("192.0.2.9")
	dnstest.Case{Rcode: dns.RcodeRefused}.Check(t, serve(r, udp, req)[0])
}

func TestServeRecoversPanics(t *testing.T) {
	var logs bytes.Buffer
	r, reg := newResolver(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r.Publish(State{Zones: testSet(t), Health: panicHealth{}})
	w := dnstest.NewRecorder("192.0.2.9")

	for range 3 {
		msgs := serve(r, w, dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}.Msg())
		if len(msgs) != 1 {
			t.Fatalf("%d messages written, want 1", len(msgs))
		}
		dnstest.Case{Rcode: dns.RcodeServerFailure}.Check(t, msgs[0])
		if msgs[0].Question[0].Name != "www.example.org." {
			t.Errorf("SERVFAIL question = %v", msgs[0].Question)
		}
	}
	if got := testutil.ToFloat64(r.m.panics); got != 3 {
		t.Errorf("panics_total = %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "panic answering query"); n != 1 {
		t.Errorf("%d panic logs for 3 panics within a minute, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "health exploded") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("panic log lacks the value or the stack:\n%s", logs.String())
	}

	// Static data does not touch health: the resolver keeps answering.
	dnstest.Case{Authoritative: true, Answer: []string{mailA}}.Check(t,
		serve(r, w, dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg())[0])
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP gslb_resolver_panics_total Panics recovered while answering; each was answered SERVFAIL.
# TYPE gslb_resolver_panics_total counter
gslb_resolver_panics_total 3
`), "gslb_resolver_panics_total"); err != nil {
		t.Error(err)
	}
}

func TestMetrics(t *testing.T) {
	r, reg := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t), Health: amsDown})
	w := dnstest.NewRecorder("192.0.2.9")
	for _, c := range []dnstest.Case{
		{Qname: "www.example.org.", Qtype: dns.TypeA},
		{Qname: "www.example.org.", Qtype: dns.TypeAAAA},
		{Qname: "svcalias.example.org.", Qtype: dns.TypeA},
		{Qname: "nothere.example.org.", Qtype: dns.TypeA},
		{Qname: "host.example.net.", Qtype: dns.TypeTLSA},
		{Qname: "example.com.", Qtype: dns.TypeA},
		{Qname: "example.org.", Qtype: dns.TypeMX}, // the service in the additional section is not counted
	} {
		serve(r, w, c.Msg())
	}
	strict := health{"strict.example.org/ams/192.0.2.31": false, "strict.example.org/ams/192.0.2.32": false}
	r.Publish(State{Zones: testSet(t), Health: strict})
	serve(r, w, dnstest.Case{Qname: "strict.example.org.", Qtype: dns.TypeA}.Msg())

	want := `
# HELP gslb_resolver_answers_total Service answers, by service and by the site that served (all_down when no site was eligible).
# TYPE gslb_resolver_answers_total counter
gslb_resolver_answers_total{service="*.svcwild.example.org.",site="all_down"} 0
gslb_resolver_answers_total{service="*.svcwild.example.org.",site="ams"} 0
gslb_resolver_answers_total{service="strict.example.org.",site="all_down"} 1
gslb_resolver_answers_total{service="strict.example.org.",site="ams"} 0
gslb_resolver_answers_total{service="www.example.org.",site="all_down"} 1
gslb_resolver_answers_total{service="www.example.org.",site="ams"} 0
gslb_resolver_answers_total{service="www.example.org.",site="fra"} 2
# HELP gslb_resolver_requests_total DNS requests answered, by zone (origin, or none), query type and response code.
# TYPE gslb_resolver_requests_total counter
gslb_resolver_requests_total{qtype="A",rcode="NOERROR",zone="example.org."} 2
gslb_resolver_requests_total{qtype="A",rcode="NXDOMAIN",zone="example.org."} 1
gslb_resolver_requests_total{qtype="A",rcode="REFUSED",zone="none"} 1
gslb_resolver_requests_total{qtype="A",rcode="SERVFAIL",zone="example.org."} 1
gslb_resolver_requests_total{qtype="AAAA",rcode="NOERROR",zone="example.org."} 1
gslb_resolver_requests_total{qtype="MX",rcode="NOERROR",zone="example.org."} 1
gslb_resolver_requests_total{qtype="other",rcode="NOERROR",zone="example.net."} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gslb_resolver_answers_total", "gslb_resolver_requests_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "gslb_resolver_request_duration_seconds"); err != nil || n != 1 {
		t.Errorf("request_duration_seconds: %d series, %v", n, err)
	}

	// A publish without a zone and a service drops their series.
	r.Publish(State{})
	if n, err := testutil.GatherAndCount(reg, "gslb_resolver_answers_total"); err != nil || n != 0 {
		t.Errorf("answers_total after the services went: %d series, %v", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "gslb_resolver_requests_total"); err != nil || n != 1 {
		t.Errorf("requests_total after the zones went: %d series (want only zone none), %v", n, err)
	}
}

func TestMetricsLint(t *testing.T) {
	r, reg := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t)})
	serve(r, dnstest.NewRecorder("192.0.2.9"), dnstest.Case{Qname: "www.example.org.", Qtype: dns.TypeA}.Msg())
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestQtypeAndRcodeLabels(t *testing.T) {
	seen := map[string]bool{}
	for t16 := range uint16(65535) {
		l := qtypeLabels[qtypeIndex(t16)]
		if l != "other" && l != dns.TypeToString[t16] {
			t.Errorf("qtype %d is labelled %q, want %q", t16, l, dns.TypeToString[t16])
		}
		seen[l] = true
	}
	if len(seen) != len(qtypeLabels) {
		t.Errorf("%d of %d qtype labels reachable", len(seen), len(qtypeLabels))
	}
	for rc := range 4096 {
		l := rcodeLabels[rcodeIndex(rc)]
		want := dns.RcodeToString[rc]
		if rc == dns.RcodeBadVers {
			want = "BADVERS" // 16 is BADSIG in TSIG, BADVERS in EDNS: we only send the latter
		}
		if l != "other" && l != want {
			t.Errorf("rcode %d is labelled %q, want %q", rc, l, want)
		}
	}
}

// TestServeConcurrent answers from many goroutines while publishing, for
// the race detector: shared RRs must never be written.
func TestServeConcurrent(t *testing.T) {
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: testSet(t)})
	cases := []dnstest.Case{
		{Qname: "www.example.org.", Qtype: dns.TypeA},
		{Qname: "example.org.", Qtype: dns.TypeMX, UDPSize: 1232},
		{Qname: "foo.wild.example.org.", Qtype: dns.TypeA},
		{Qname: "chain.example.org.", Qtype: dns.TypeA},
		{Qname: "nothere.example.org.", Qtype: dns.TypeA, Do: true},
		{Qname: "www.sub.example.org.", Qtype: dns.TypeA},
	}
	// What each case answers under each of the two states published below:
	// every concurrent reply must be exactly one of them, never a mix.
	want := make([][2]string, len(cases))
	for s, h := range []Health{nil, amsDown} {
		r.Publish(State{Zones: testSet(t), Health: h})
		for i, c := range cases {
			w := dnstest.NewRecorder("192.0.2.9")
			r.ServeDNS(w, c.Msg())
			want[i][s] = stripID(w.Msgs[0].String())
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			w := dnstest.NewRecorder("192.0.2.9")
			w.Pack = true
			for i := range 200 {
				k := (g + i) % len(cases)
				r.ServeDNS(w, cases[k].Msg())
				if len(w.Msgs) != 1 {
					t.Errorf("%s: %d replies, want 1", cases[k].Qname, len(w.Msgs))
				} else if got := stripID(w.Msgs[0].String()); got != want[k][0] && got != want[k][1] {
					t.Errorf("%s under concurrent publishes:\n%s\nwant one of\n%s\n%s", cases[k].Qname, got, want[k][0], want[k][1])
				}
				w.Reset()
			}
		})
	}
	for i := range 50 {
		var h Health
		if i%2 == 0 {
			h = amsDown
		}
		r.Publish(State{Zones: testSet(t), Health: h})
	}
	wg.Wait()
}

// stripID drops the message ID line of a dns.Msg's text form.
func stripID(s string) string {
	if i := strings.Index(s, ", id: "); i >= 0 {
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			return s[:i] + s[i+j:]
		}
	}
	return s
}
