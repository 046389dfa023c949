package zones_test

import (
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
