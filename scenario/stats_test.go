package scenario

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// summary is the distribution of one series of measurements.
type summary struct {
	n                     int
	min, median, p99, max time.Duration
}

// summarize returns min, median, nearest-rank p99 and max of ds.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{n: n, min: s[0], median: med, p99: s[nearestRank(n, 0.99)], max: s[n-1]}
}

// nearestRank returns the index of the p-th quantile of n sorted values.
func nearestRank(n int, p float64) int {
	return max(int(math.Ceil(p*float64(n)))-1, 0)
}

func TestSummarize(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"one", ms(7), summary{1, 7e6, 7e6, 7e6, 7e6}},
		{"odd", ms(3, 1, 2), summary{3, 1e6, 2e6, 3e6, 3e6}},
		{"even", ms(4, 1, 2, 3), summary{4, 1e6, 2500e3, 4e6, 4e6}},
		{"hundred", ms(hundred...), summary{100, 1e6, 50500e3, 99e6, 100e6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// results collects, per trial kind, the time until every node met the
// condition and each node's own time.
type results struct {
	kinds  []string
	every  map[string][]time.Duration
	byNode map[string]map[string][]time.Duration
}

func newResults(kinds ...string) *results {
	r := &results{kinds: kinds, every: map[string][]time.Duration{}, byNode: map[string]map[string][]time.Duration{}}
	for _, k := range kinds {
		r.byNode[k] = map[string][]time.Duration{}
	}
	return r
}

// add records one trial of kind and returns the slowest node's time.
func (r *results) add(kind string, times map[string]time.Duration) time.Duration {
	var slowest time.Duration
	for node, d := range times {
		r.byNode[kind][node] = append(r.byNode[kind][node], d)
		slowest = max(slowest, d)
	}
	r.every[kind] = append(r.every[kind], slowest)
	return slowest
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// table renders the results: per kind the time until every node, then
// per kind and node.
func (r *results) table(nodes []string) string {
	var b strings.Builder
	row := func(label string, s summary) {
		fmt.Fprintf(&b, "  %-34s %4d %8s %8s %8s %8s\n", label, s.n, secs(s.min), secs(s.median), secs(s.p99), secs(s.max))
	}
	head := func(title string) {
		fmt.Fprintf(&b, "%s\n  %-34s %4s %8s %8s %8s %8s\n", title, "", "n", "min", "median", "p99", "max")
	}
	head("seconds until every node (the slowest node of each trial)")
	for _, k := range r.kinds {
		row(k, summarize(r.every[k]))
	}
	head("seconds per node")
	for _, k := range r.kinds {
		for _, n := range nodes {
			if ds, ok := r.byNode[k][n]; ok {
				row(k+" @"+n, summarize(ds))
			}
		}
	}
	return b.String()
}
