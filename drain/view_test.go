package drain

import (
	"net/netip"
	"testing"
	"time"
)

func TestViewDrained(t *testing.T) {
	mk := func(site, service string, expires time.Time, deleted bool, clients ...string) Record {
		k := Key{Site: site, Service: service}
		for _, c := range clients {
			k.Clients = append(k.Clients, netip.MustParsePrefix(c))
		}
		k = k.Normalize()
		return Record{ID: k.ID(), Key: k, Reason: "r", Expires: expires, Deleted: deleted, Stamp: stamp(t0, 0, "n")}
	}
	v := NewView([]Record{
		mk("dc1", "", time.Time{}, false),                                // all of dc1
		mk("dc2", "talk.example.com", time.Time{}, false),                // one service
		mk("dc3", "", time.Time{}, false, "10.0.0.0/8", "2001:db8::/32"), // a drill
		mk("dc4", "", t0.Add(time.Minute), false),                        // expires later
		mk("dc5", "", t0, false),                                         // expired
		mk("dc6", "", time.Time{}, true),                                 // deleted
		mk("dc7", "pay.example.com", time.Time{}, false, "192.0.2.0/24"), // service and clients
	}, t0)
	client := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		service, site, client string
		want                  bool
	}{
		{"talk.example.com.", "dc1", "192.0.2.1", true},
		{"pay.example.com.", "dc1", "192.0.2.1", true},
		{"talk.example.com.", "dc2", "192.0.2.1", true},
		{"pay.example.com.", "dc2", "192.0.2.1", false},
		{"talk.example.com.", "dc3", "10.1.2.3", true},
		{"talk.example.com.", "dc3", "::ffff:10.1.2.3", true}, // IPv4-mapped client
		{"talk.example.com.", "dc3", "2001:db8::1", true},
		{"talk.example.com.", "dc3", "192.0.2.1", false},
		{"talk.example.com.", "dc4", "192.0.2.1", true},
		{"talk.example.com.", "dc5", "192.0.2.1", false},
		{"talk.example.com.", "dc6", "192.0.2.1", false},
		{"pay.example.com.", "dc7", "192.0.2.1", true},
		{"pay.example.com.", "dc7", "198.51.100.1", false},
		{"talk.example.com.", "dc7", "192.0.2.1", false},
		{"talk.example.com.", "dc9", "192.0.2.1", false},
	}
	for _, tc := range tests {
		if got := v.Drained(tc.service, tc.site, netip.MustParseAddr(tc.client)); got != tc.want {
			t.Errorf("Drained(%s, %s, %s) = %v, want %v", tc.service, tc.site, tc.client, got, tc.want)
		}
		// DrainedBy explains Drained: some ID exactly when drained.
		ids := v.DrainedBy(tc.service, tc.site, netip.MustParseAddr(tc.client))
		if got := len(ids) > 0; got != tc.want {
			t.Errorf("DrainedBy(%s, %s, %s) = %v, want drains named exactly when Drained is %v", tc.service, tc.site, tc.client, ids, tc.want)
		}
	}
	if got, want := v.DrainedBy("talk.example.com.", "dc2", client), []string{mk("dc2", "talk.example.com", time.Time{}, false).ID}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("DrainedBy(talk, dc2) = %v, want %v", got, want)
	}
	if got := v.Len(); got != 5 {
		t.Errorf("Len() = %d, want 5 drains in force", got)
	}
	if got := len(v.Affecting("talk.example.com.", "dc7")); got != 0 {
		t.Errorf("Affecting(talk, dc7) has %d drains, want 0", got)
	}
	for _, tc := range []struct {
		service, site string
		want          bool
	}{
		{"talk.example.com.", "dc1", false},
		{"talk.example.com.", "dc3", true},
		{"pay.example.com.", "dc7", true},
		{"talk.example.com.", "dc7", false}, // the drill is for another service
		{"talk.example.com.", "dc9", false},
	} {
		if got := v.ClientScoped(tc.service, tc.site); got != tc.want {
			t.Errorf("ClientScoped(%s, %s) = %v, want %v", tc.service, tc.site, got, tc.want)
		}
	}
	var nilView *View
	if nilView.ClientScoped("talk.example.com.", "dc3") {
		t.Error("nil View is client-scoped, want not")
	}
	if nilView.Drained("talk.example.com.", "dc1", client) {
		t.Error("nil View drains, want nothing drained")
	}
}

func TestOverlap(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	tests := []struct {
		a, b []netip.Prefix
		want bool
	}{
		{nil, nil, true},
		{nil, p("10.0.0.0/8"), true},
		{p("10.0.0.0/8"), p("10.1.0.0/16"), true},
		{p("10.0.0.0/8"), p("192.0.2.0/24"), false},
		{p("10.0.0.0/8", "2001:db8::/32"), p("2001:db8:1::/48"), true},
	}
	for _, tc := range tests {
		if got := Overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("Overlap(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func BenchmarkDrained(b *testing.B) {
	k := Key{Site: "dc1", Clients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	v := NewView([]Record{{ID: k.ID(), Key: k, Stamp: stamp(t0, 0, "n")}}, t0)
	client := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		v.Drained("talk.example.com.", "dc1", client)
	}
}
