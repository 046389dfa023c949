package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/zones"
)

// publisherWith returns a publisher whose last publish is p, for the
// collectors that read it.
func publisherWith(p *published) *publisher {
	pub := &publisher{}
	pub.last.Store(p)
	return pub
}

func drainView(t *testing.T, now time.Time, keys ...drain.Key) *drain.View {
	t.Helper()
	var recs []drain.Record
	for i, k := range keys {
		k = k.Normalize()
		recs = append(recs, drain.Record{ID: k.ID(), Key: k, Reason: "test", At: now.Add(-time.Duration(i+1) * time.Hour)})
	}
	return drain.NewView(recs, now)
}

// TestOpsCollector: talk has dc1's two endpoints down, so dc2 answers;
// pay's dc2 is drained (for every client) and one of dc1's endpoints is
// down, so no site qualifies; a drain limited to some clients changes no
// gauge.
func TestOpsCollector(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	set := guardSet()
	view := viewWithDown(set, "talk.example.com/dc1/192.0.2.1", "talk.example.com/dc1/192.0.2.2", "pay.example.com/dc1/192.0.2.3")
	drains := drainView(t, now,
		drain.Key{Site: "dc2", Service: "pay.example.com"},
		drain.Key{Site: "dc3", Clients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
	)
	c := &opsCollector{pub: publisherWith(&published{Zones: set, View: view, Drains: drains}), now: func() time.Time { return now }}
	want := `
# HELP gslb_service_site_serving Whether the site may take the service's traffic (1) or not (0): enough endpoints up by the merged verdicts and not drained, for clients no client-limited drain covers.
# TYPE gslb_service_site_serving gauge
gslb_service_site_serving{service="pay.example.com.",site="dc1"} 0
gslb_service_site_serving{service="pay.example.com.",site="dc2"} 0
gslb_service_site_serving{service="talk.example.com.",site="dc1"} 0
gslb_service_site_serving{service="talk.example.com.",site="dc2"} 1
gslb_service_site_serving{service="talk.example.com.",site="dc3"} 1
# HELP gslb_service_answering_site 1 for the site the service answers with (the first serving site in its order), 0 for its other sites; all 0 while the all-down policy decides.
# TYPE gslb_service_answering_site gauge
gslb_service_answering_site{service="pay.example.com.",site="dc1"} 0
gslb_service_answering_site{service="pay.example.com.",site="dc2"} 0
gslb_service_answering_site{service="talk.example.com.",site="dc1"} 0
gslb_service_answering_site{service="talk.example.com.",site="dc2"} 1
gslb_service_answering_site{service="talk.example.com.",site="dc3"} 0
# HELP gslb_service_all_down 1 while no site of the service may take traffic and its all_down policy decides the answer.
# TYPE gslb_service_all_down gauge
gslb_service_all_down{service="pay.example.com."} 1
gslb_service_all_down{service="talk.example.com."} 0
# HELP gslb_drain_oldest_age_seconds Age of the oldest operator drain in force (since it was written); 0 when none is.
# TYPE gslb_drain_oldest_age_seconds gauge
gslb_drain_oldest_age_seconds 7200
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestAllDownCounter: each fall into the all-down policy counts once,
// however many publishes it lasts.
func TestAllDownCounter(t *testing.T) {
	set := guardSet()
	reg := prometheus.NewRegistry()
	c := newAllDownCounter(reg)
	talkDown := []string{"talk.example.com/dc1/192.0.2.1", "talk.example.com/dc1/192.0.2.2",
		"talk.example.com/dc2/198.51.100.1", "talk.example.com/dc3/203.0.113.1"}
	steps := []struct {
		down []string
		want float64
	}{
		{nil, 0},
		{talkDown, 1},
		{talkDown, 1}, // still down: the same episode
		{talkDown[:3], 1},
		{talkDown, 2},
	}
	for i, s := range steps {
		c.observe(&published{Zones: set, View: viewWithDown(set, s.down...)})
		if got := testutil.ToFloat64(c.total.WithLabelValues("talk.example.com.")); got != s.want {
			t.Errorf("step %d: gslb_service_all_down_total{talk} = %v, want %v", i, got, s.want)
		}
		if got := testutil.ToFloat64(c.total.WithLabelValues("pay.example.com.")); got != 0 {
			t.Errorf("step %d: gslb_service_all_down_total{pay} = %v, want 0", i, got)
		}
	}
	// A service dropped by a reload loses its series.
	c.observe(&published{Zones: zones.NewSet(nil, nil, "h"), View: (*health.View)(nil)})
	if n := testutil.CollectAndCount(c.total); n != 0 {
		t.Errorf("%d all_down_total series after the services went, want 0", n)
	}
}
