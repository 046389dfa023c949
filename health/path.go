package health

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// MaxPathAllowance bounds what each round trip to a remote endpoint adds to
// its probes' timeout (see pathTiming): paths of up to 200ms, a continent
// or more apart, fit with the defaults, while the detection of a dead
// remote endpoint stays within a few seconds however noisy the estimate.
// It also is the allowance per round trip while none has been measured.
const MaxPathAllowance = 200 * time.Millisecond

// roundTrips is how many network round trips a probe of kind needs before
// the endpoint's own answer: TCP's handshake, plus the request for HTTP,
// plus two for a full TLS handshake. An HTTP or HTTPS probe that does not
// dial (it sends its request on the connection an earlier probe kept)
// needs the request's round trip only.
func roundTrips(kind string, dials bool) int {
	switch {
	case kind == "tcp" || !dials:
		return 1
	case kind == "https":
		return 4
	default:
		return 2
	}
}

// pathTiming returns the timeout and interval of a probe to a remote
// endpoint: the configured timeout plus a path allowance of
// roundTrips(kind, dials) × RTO, where RTO is the retransmission timeout
// TCP would use for the path (smoothed round trip plus four times its
// variation, RFC 6298) measured by earlier probes (see rtt), at most
// roundTrips(kind, dials) × MaxPathAllowance (the allowance before the
// first measurement).
// The interval grows to the timeout if it is shorter, so that the
// timeout never exceeds it.
//
// The configured timeout is what the endpoint itself may take, as it is
// on the LAN where it was chosen; the allowance is what the path adds. A
// slow but healthy path thus does not read as down, while a dead endpoint
// is still judged by the same timeout plus a bounded, learnt allowance:
// the estimate is fed by completed connects only (answered or refused),
// so an endpoint that stops answering does not stretch its own timeout.
func pathTiming(kind string, dials bool, timeout, interval time.Duration, r rtt) (time.Duration, time.Duration) {
	n := time.Duration(roundTrips(kind, dials))
	allowance := n * MaxPathAllowance
	if rto, ok := r.rto(); ok {
		allowance = min(n*rto, allowance)
	}
	// Whole milliseconds read better in "timeout after 712ms".
	timeout = (timeout + allowance).Round(time.Millisecond)
	return timeout, max(interval, timeout)
}

// rtt is a smoothed round-trip estimate, computed as TCP does (RFC 6298,
// section 2). Two kinds of measurement feed it, both of exchanges that
// completed: the time a probe's TCP connect took (observe), and, after a
// successful HTTP exchange, the kernel's own smoothed estimate of the
// connection (adopt), which the kernel keeps from the acknowledgements of
// everything sent on it. The second is what keeps the estimate current
// while a probe reuses one connection for minutes: an estimate made from a
// slow connect (a node starting among many others, starved of CPU) then
// falls as the path's real round trips come in, instead of stretching the
// endpoint's timeout until the connection is renewed. The zero value has
// no measurement.
type rtt struct {
	srtt, rttvar time.Duration
	n            int
}

// observe adds one measured round trip.
func (r *rtt) observe(d time.Duration) {
	if r.n == 0 {
		r.srtt, r.rttvar = d, d/2
	} else {
		diff := r.srtt - d
		if diff < 0 {
			diff = -diff
		}
		r.rttvar = (3*r.rttvar + diff) / 4
		r.srtt = (7*r.srtt + d) / 8
	}
	r.n++
}

// adopt replaces the estimate with the kernel's smoothed round trip and
// mean deviation of a connection to the endpoint (TCP_INFO), which are
// computed by the same rules from every acknowledgement on it. The RTO is
// then computed from them as RFC 6298 does, without the kernel's 200ms
// floor.
func (r *rtt) adopt(srtt, rttvar time.Duration) {
	r.srtt, r.rttvar = srtt, rttvar
	r.n++
}

// rto returns the smoothed round trip plus four times its variation, and
// false before the first measurement.
func (r rtt) rto() (time.Duration, bool) {
	return r.srtt + 4*r.rttvar, r.n > 0
}

// probeTrace is what a probe built by this package tells the Checker
// about its connection besides the verdict: how long the TCP connect took,
// when it completed (established or refused, either of which took one
// round trip), and, when the Checker asks for it (wantRTT), the kernel's
// round-trip estimate of the connection after a successful HTTP exchange.
//
// It also carries what the Checker lends the probe: conns, where an HTTP
// probe keeps its connection to the endpoint from one probe to the next.
type probeTrace struct {
	connect   time.Duration
	connected bool
	// srtt and rttvar are the kernel's estimate (see rtt.adopt), valid
	// when sampled.
	srtt, rttvar time.Duration
	sampled      bool
	wantRTT      bool      // set by the Checker for remote endpoints
	conns        *connSlot // nil: keep no connection
	// http is set by a plain HTTP probe that keeps its connection: the
	// Checker's event loop may run the next probes on it (see loop).
	http *httpProbe
	// tcp is set by NewTCPProbe's probes: the event loop may run the
	// next ones.
	tcp bool
}

// reset clears what the last probe reported.
func (t *probeTrace) reset() {
	t.connect, t.connected = 0, false
	t.srtt, t.rttvar, t.sampled = 0, 0, false
	t.http, t.tcp = nil, false
}

// feed adds what the probe measured to r.
func (t *probeTrace) feed(r *rtt) {
	if t.connected {
		r.observe(t.connect)
	}
	if t.sampled {
		r.adopt(t.srtt, t.rttvar)
	}
}

type traceKey struct{}

// withTrace returns ctx carrying t for the probe to fill in.
func withTrace(ctx context.Context, t *probeTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// dial opens a TCP connection to addr and records how long the connect
// took in ctx's probeTrace, if any. d should have keep-alives off
// (newDialer): a probe's connection lives for one exchange, or is kept by
// an HTTP probe that notices a dead one by its next exchange.
func dial(ctx context.Context, d *net.Dialer, addr netip.AddrPort) (*net.TCPConn, error) {
	start := time.Now()
	// Not d.DialTCP: given no local address it binds one explicitly,
	// and bind's search for a free port is slow when many are in use
	// (connect picks one that is free for this destination only).
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if t, ok := ctx.Value(traceKey{}).(*probeTrace); ok && (err == nil || errors.Is(err, syscall.ECONNREFUSED)) {
		t.connect, t.connected = time.Since(start), true
	}
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// newDialer returns the dialer of probes: no TCP keep-alive, which saves a
// system call per connection; the probes themselves show whether a kept
// connection still works.
func newDialer() *net.Dialer {
	return &net.Dialer{KeepAlive: -1}
}
