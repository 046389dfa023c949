package health

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkScheduler measures what the scheduler costs a probe at 10,000
// groups probed every 500ms: each op takes the groups due by now, starting
// none, and schedules each one's next probe, as a finished probe does,
// while time moves on by 50ms (maxSlack) per round, so that every group
// is visited once per 10 rounds, as cold in the cache as a real one.
func BenchmarkScheduler(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	s := newScheduler()
	groups := make([]*group, n)
	for i := range groups {
		groups[i] = &group{ctx: ctx, run: ctx}
		s.add(groups[i], s.epoch.Add(time.Duration(rand.N(500*time.Millisecond))), maxSlack)
	}
	// Memory that a probe's other work touches between the scheduler's
	// visits, so that the groups and entries are not all in the cache.
	other := make([]byte, 8<<20)
	now := int64(0)
	var out []*group
	b.ResetTimer()
	probes := 0
	for b.Loop() {
		now += int64(maxSlack)
		s.mu.Lock()
		out = out[:0]
		s.takeLocked(now, func(g *group) { out = append(out, g) })
		s.mu.Unlock()
		for _, g := range out {
			other[rand.N(len(other))]++
			due, slack := spread(s.epoch.Add(time.Duration(now)), 500*time.Millisecond)
			s.add(g, due, slack)
		}
		probes += len(out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(probes, 1)), "ns/probe")
}
