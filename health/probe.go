package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"time"
)

// Probe checks one endpoint once. A nil error means healthy; a non-nil
// error says briefly why not ("status 503, want 200", "connect: connection
// refused") and ends up in [Status].LastError.
//
// A Probe must return promptly once ctx is done: the [Checker] bounds every
// probe by its target's Timeout through ctx and nothing else, and waits for
// running probes when it stops. A Probe is called from one goroutine per
// target but may be shared by several targets, so it must be safe for
// concurrent use.
type Probe func(ctx context.Context, addr netip.AddrPort) error

// timeoutError is what a probe's error becomes when its deadline passed:
// the configured timeout says more to an operator than "context deadline
// exceeded" or "i/o timeout".
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("timeout after %s", e.after) }

func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// runProbe calls p bounded by timeout. A failure after the deadline passed
// is reported as a timeout whatever the probe said; a panic in p is turned
// into an error, so one bad probe cannot take the server down.
func runProbe(ctx context.Context, p Probe, addr netip.AddrPort, timeout time.Duration) (err error) {
	return runProbeUntil(ctx, p, addr, time.Now().Add(timeout), timeout)
}

// runProbeUntil is runProbe with the deadline given; timeout is what a
// timeout error says.
func runProbeUntil(ctx context.Context, p Probe, addr netip.AddrPort, deadline time.Time, timeout time.Duration) (err error) {
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("probe panic: %v", r)
		}
	}()
	err = p(pctx, addr)
	// A socket's deadline is the context's, and may pass before the
	// context's own timer fires.
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, os.ErrDeadlineExceeded)
	if err != nil && ctx.Err() == nil && timedOut {
		return &timeoutError{after: timeout}
	}
	return err
}

// shortError strips what the operator already knows (method, URL, local
// and remote address) from a dial or HTTP error and keeps the cause:
// "connect: connection refused" rather than
// `Get "http://192.0.2.1:80/": dial tcp 192.0.2.1:80: connect: connection refused`.
// Context errors are kept as they are, so runProbe can recognise them.
func shortError(err error) error {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return cve
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
