package testwait

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestUntil: Until returns once the condition holds, and fails the test,
// naming what it waited for, when the condition never holds.
func TestUntil(t *testing.T) {
	var n atomic.Int64
	go func() {
		for range 3 {
			time.Sleep(time.Millisecond)
			n.Add(1)
		}
	}()
	Until(t, 5*time.Second, "three steps", func() bool { return n.Load() == 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("Until returned after %d steps, before its condition held", got)
	}

	ft := &fatalT{TB: t}
	done := make(chan struct{})
	go func() { // Fatalf ends the goroutine, as it ends a test
		defer close(done)
		Until(ft, 20*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if ft.msg != "never: not within 20ms" {
		t.Errorf("failure %q, want %q", ft.msg, "never: not within 20ms")
	}
}

// fatalT records Fatalf and ends the goroutine, as a test's does.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
