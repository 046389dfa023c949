package health

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestCheckerPacesNewConnections: when more probes need a goroutine of
// their own at once than maxOwn (10,000 endpoints starting, each making
// its first connection), the rest wait their turn rather than start
// together, and the wait does not count against their timeout: a
// connection that takes 100ms of a 300ms timeout fails no probe, however
// many wait. On the old code all 1,000 probes ran at once.
func TestCheckerPacesNewConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu                sync.Mutex
			inFlight, maxSeen int
		)
		slowConnect := func(ctx context.Context, _ netip.AddrPort) error {
			mu.Lock()
			inFlight++
			maxSeen = max(maxSeen, inFlight)
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight--
				mu.Unlock()
			}()
			select {
			case <-time.After(100 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		targets := make([]Target, 1000)
		for i := range targets {
			targets[i] = target(fmt.Sprintf("ep%d", i), slowConnect)
		}
		r := start(t, CheckerConfig{FirstRoundBound: time.Hour}, targets...)
		defer r.stop(t)
		advance(3 * time.Second)
		if maxSeen > maxOwn {
			t.Errorf("%d probes ran at once, want at most %d", maxSeen, maxOwn)
		}
		for id, st := range r.Snapshot().statuses {
			if st.State != Up {
				t.Fatalf("%s is %s (%s), want up: a probe that waited for its turn timed out", id, st.State, st.LastError)
			}
		}
	})
}
