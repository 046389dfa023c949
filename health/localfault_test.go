package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// dialError is what a dial that failed with errno looks like once a probe
// has shortened it: the net.OpError's cause, an os.SyscallError.
func dialError(syscallName string, errno syscall.Errno) error {
	return shortError(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(syscallName, errno)})
}

func TestLocalFault(t *testing.T) {
	tests := []struct {
		err        error
		wantReason string // "": the endpoint's
	}{
		{dialError("socket", syscall.EMFILE), LocalFileDescriptors},
		{dialError("socket", syscall.ENFILE), LocalFileDescriptors},
		{dialError("connect", syscall.ENOBUFS), LocalMemory},
		{dialError("socket", syscall.ENOMEM), LocalMemory},
		{dialError("connect", syscall.EADDRNOTAVAIL), LocalAddress},
		{dialError("connect", syscall.EADDRINUSE), LocalAddress},
		{dialError("connect", syscall.EPERM), LocalDenied},
		{dialError("connect", syscall.EACCES), LocalDenied},
		{fmt.Errorf("read body: %w", dialError("read", syscall.ENOBUFS)), LocalMemory},
		// The endpoint's, or the path's.
		{dialError("connect", syscall.ECONNREFUSED), ""},
		{dialError("read", syscall.ECONNRESET), ""},
		{dialError("connect", syscall.ETIMEDOUT), ""},
		{dialError("connect", syscall.ENETUNREACH), ""},
		{dialError("connect", syscall.EHOSTUNREACH), ""},
		{&timeoutError{after: time.Second}, ""},
		{errors.New("status 503, want 200-399"), ""},
		{nil, ""},
	}
	for _, tc := range tests {
		reason, ok := localFault(tc.err)
		if reason != tc.wantReason || ok != (tc.wantReason != "") {
			t.Errorf("localFault(%v) = %q, %v; want %q", tc.err, reason, ok, tc.wantReason)
		}
	}
}

// errEMFILE is what a probe returns when the process is out of file
// descriptors.
var errEMFILE = dialError("socket", syscall.EMFILE)

func local(context.Context) error { return errEMFILE }

// TestCheckerLocalFaultIsNoVerdict: probes that fail because of this node
// never move the state. After Fall of them in a row the node abstains
// (its report says Unknown, so it does not vote) and keeps its state; the
// first probe that reaches the endpoint again ends the abstention.
func TestCheckerLocalFaultIsNoVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := make(script)
		r := start(t, CheckerConfig{}, target("a", s.probe))
		defer r.stop(t)
		s.feed(pass)
		r.signalled()
		up := r.Snapshot()

		first := s.feed(local)
		if r.signalled() || r.Snapshot() != up {
			t.Fatal("one local fault published a snapshot")
		}
		second := s.feed(local)
		within(t, "retry after a local fault", second.Sub(first), 90*time.Millisecond, 110*time.Millisecond)
		if !r.signalled() {
			t.Fatal("no snapshot when the node starts to abstain")
		}
		st, _ := r.Snapshot().Get("a")
		if st.State != Up || st.LocalFault != "socket: too many open files" || st.Vote() != Unknown {
			t.Fatalf("status after two local faults = %+v, vote %v; want up, abstaining with the error", st, st.Vote())
		}
		if got := r.Snapshot().States()["a"]; got != Unknown {
			t.Errorf("reported state while abstaining = %v, want unknown (no vote)", got)
		}
		if !r.Snapshot().Up("a") {
			t.Error("Up while abstaining = false, want true")
		}
		abstaining := r.Snapshot()
		for range 50 {
			s.feed(local)
		}
		if r.signalled() || r.Snapshot() != abstaining {
			t.Error("more local faults published snapshots")
		}
		if got := r.state("a"); got != Up {
			t.Errorf("state after 52 local faults = %v, want up", got)
		}
		if got := testutil.ToFloat64(r.metrics.localFaults.WithLabelValues(LocalFileDescriptors)); got != 52 {
			t.Errorf("local probe errors{file_descriptors} = %v, want 52", got)
		}
		if got := testutil.ToFloat64(r.metrics.probeFailures.WithLabelValues("tcp")); got != 0 {
			t.Errorf("probe failures = %v, want 0: local faults are not the endpoint's", got)
		}

		s.feed(pass)
		st, _ = r.Snapshot().Get("a")
		if !r.signalled() || st.State != Up || st.LocalFault != "" || st.Vote() != Up {
			t.Fatalf("status after a probe reached the endpoint = %+v, want up and voting", st)
		}

		// Local faults interleaved with real failures: only the real ones
		// count, so the target goes down after two of them.
		s.feed(fail)
		s.feed(local)
		if got := r.state("a"); got != Up {
			t.Fatalf("state = %v after fail, local fault; want up", got)
		}
		s.feed(fail)
		if got := r.state("a"); got != Down {
			t.Fatalf("state = %v after fail, local fault, fail; want down", got)
		}
	})
}

// TestCheckerLocalFaultFromStart: a node out of file descriptors from the
// start never judges a target; it stays Unknown and the node abstains.
func TestCheckerLocalFaultFromStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p flip
		p.set(errEMFILE)
		r := start(t, CheckerConfig{}, target("a", p.probe))
		defer r.stop(t)
		advance(10 * time.Second)
		st, _ := r.Snapshot().Get("a")
		if st.State != Unknown || st.LocalFault == "" || !r.Snapshot().Ready() {
			t.Errorf("status after 10s of local faults = %+v, ready %v; want unknown, abstaining, ready by the bound", st, r.Snapshot().Ready())
		}
		p.set(nil)
		advance(time.Second)
		if st, _ := r.Snapshot().Get("a"); st.State != Up || st.LocalFault != "" {
			t.Errorf("status once probes work = %+v, want up", st)
		}
	})
}

// TestCheckerLocalFaultLogIsRateLimited: under exhaustion every probe
// fails; the log gets one line at once, then at most one per 10s saying
// how many were left out.
func TestCheckerLocalFaultLogIsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncWriter
		var p flip
		p.set(errEMFILE)
		tg := func(id string) Target { return target(id, p.probe) }
		c, err := NewChecker(CheckerConfig{}, []Target{tg("a"), tg("b")}, slog.New(slog.NewTextHandler(&buf, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		advance(15 * time.Second) // two targets, a probe every ~100ms each
		cancel()
		<-done
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		var faults []string
		for _, l := range lines {
			if strings.Contains(l, "probe failed on this node") {
				faults = append(faults, l)
			}
		}
		if len(faults) != 2 {
			t.Fatalf("%d local-fault lines in 15s, want 2:\n%s", len(faults), buf.String())
		}
		for _, want := range []string{"level=WARN", "reason=file_descriptors", `error="socket: too many open files"`, "more_since_last_line=0"} {
			if !strings.Contains(faults[0], want) {
				t.Errorf("first line %q lacks %q", faults[0], want)
			}
		}
		if strings.Contains(faults[1], "more_since_last_line=0") {
			t.Errorf("second line %q does not count the faults left out", faults[1])
		}
	})
}

// syncWriter is a strings.Builder safe for the Checker's goroutines.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
