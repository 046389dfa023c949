// Package testwait waits in tests for a condition that something running
// on its own (a server, a cluster, the kernel) makes true, polling it
// under a deadline rather than sleeping a fixed time. It imports nothing
// of gslbd.
package testwait

import (
	"testing"
	"time"
)

// Until polls cond every few milliseconds until it holds, and fails t,
// naming what it waited for, when it does not within d.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
