package zones_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gslbd/gslbd/zones"
)

// TestThresholdNeed: percentages are exact. With float arithmetic 7% of
// 100 came to 7.000000000000001 and needed 8 (likewise 14%, 28%, 56%).
func TestThresholdNeed(t *testing.T) {
	tests := []struct {
		percent string
		total   int
		want    int
	}{
		{"7%", 100, 7}, {"14%", 100, 14}, {"28%", 100, 28}, {"56%", 100, 56},
		{"7%", 1000, 70}, {"29%", 100, 29}, {"57%", 100, 57}, {"58%", 100, 58},
		{"50%", 3, 2}, {"12.5%", 8, 1}, {"12.5%", 9, 2}, {"33.3333%", 3, 1}, {"33.3334%", 3, 2},
		{"100%", 7, 7}, {"0.0001%", 5, 1}, {"1%", 0, 1},
	}
	for _, tc := range tests {
		th := loadThreshold(t, tc.percent)
		if got := th.Need(tc.total); got != tc.want {
			t.Errorf("min_healthy %s: Need(%d) = %d, want %d", tc.percent, tc.total, got, tc.want)
		}
	}
	// Every whole percentage of 100 endpoints needs exactly that many.
	for p := 1; p <= 100; p++ {
		if got := (zones.Threshold{PerMillion: p * 10_000}).Need(100); got != p {
			t.Errorf("%d%% of 100: Need = %d, want %d", p, got, p)
		}
	}
	for _, tc := range []struct {
		th    zones.Threshold
		total int
		want  int
	}{
		{zones.Threshold{Count: 2}, 1, 1}, {zones.Threshold{Count: 2}, 5, 2}, {zones.Threshold{}, 5, 1},
	} {
		if got := tc.th.Need(tc.total); got != tc.want {
			t.Errorf("%+v.Need(%d) = %d, want %d", tc.th, tc.total, got, tc.want)
		}
	}
}

// loadThreshold loads a one-service file with min_healthy set to v.
func loadThreshold(t *testing.T, v string) zones.Threshold {
	t.Helper()
	set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: writeServices(t,
		"sites: [dc1]\nservices:\n  talk.example.com:\n    min_healthy: \""+v+"\"\n    sites: {dc1: [127.0.1.1]}\n")})
	if err != nil {
		t.Fatalf("Load(min_healthy %s) = %v", v, err)
	}
	return set.Service("talk.example.com.").MinHealthy
}

func TestLoadPolicies(t *testing.T) {
	set, err := zones.Load(zones.Config{Zones: goodZones(), ServicesFile: writeServices(t, `sites: [dc1, dc2, dc3]
regions:
  eu: {networks: [192.0.2.0/24, "2001:db8:e::/48"], order: [dc2, dc1]}
  us: {networks: [198.51.100.0/25], order: [dc3]}
services:
  near.example.com:
    policy: nearest
    order: [dc1, dc2, dc3]
    regions: {us: [dc3, dc2]}
    degraded_ttl: 5
    sites: {dc1: [127.0.1.1], dc2: [127.0.2.1], dc3: [127.0.3.1]}
  talk.example.com:
    policy: weighted
    max_answers: 2
    shuffle: client
    sites:
      dc1: {endpoints: [127.0.1.2, 127.0.1.3, 127.0.1.4], weight: 3, capacity: 5}
      dc2: {endpoints: [127.0.2.2], weight: 0, capacity: 2}
`)})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	near := set.Service("near.example.com.")
	// eu: dc2, dc1, then the service's other site; us as the service says.
	if got := fmt.Sprint(near.RegionSites); got != "[[1 0 2] [2 1 0]]" {
		t.Errorf("RegionSites = %s, want [[1 0 2] [2 1 0]]", got)
	}
	if !near.HasDegradedTTL || near.DegradedTTL != 5 {
		t.Errorf("degraded_ttl = %d %t, want 5", near.DegradedTTL, near.HasDegradedTTL)
	}
	talk := set.Service("talk.example.com.")
	if talk.Policy != zones.Weighted || talk.MaxAnswers != 2 || talk.Shuffle != zones.ShuffleClient ||
		talk.Sites[0].Weight != 3 || talk.Sites[0].Capacity != 5 || talk.Sites[1].Weight != 0 || talk.Sites[1].Capacity != 2 {
		t.Errorf("talk = %+v", talk)
	}
	for _, tc := range []struct {
		addr          string
		region, scope int
	}{
		{"192.0.2.9", 0, 24}, {"198.51.100.9", 1, 25}, {"198.51.100.200", -1, 25}, {"192.0.3.1", -1, 24},
		{"10.0.0.1", -1, 1}, {"2001:db8:e:1::1", 0, 48}, {"2001:db8:f::1", -1, 48}, {"2001:dead::1", -1, 17},
	} {
		r, s := near.Regions.Lookup(netip.MustParseAddr(tc.addr))
		if r != tc.region || s != tc.scope {
			t.Errorf("Lookup(%s) = %d, %d; want %d, %d", tc.addr, r, s, tc.region, tc.scope)
		}
	}
}
