package health

import (
	"context"
	"net/netip"
)

// NewTCPProbe returns a [Probe] that opens a TCP connection to the
// endpoint and closes it at once. It proves that something accepts
// connections, nothing more.
//
// The connection is closed with a reset rather than the closing
// handshake, as HAProxy closes its connect checks: the handshake would
// leave this node holding the connection in TIME_WAIT for a minute, and
// at 10,000 endpoints probed twice a second that is 1.2 million
// connections, far past the kernel's table of them
// (net.ipv4.tcp_max_tw_buckets), which then drops them with a warning in
// its log; the reset also spares both ends three packets. The endpoint's
// server may log the reset of a connection that sent nothing.
func NewTCPProbe() Probe {
	d := newDialer()
	return func(ctx context.Context, addr netip.AddrPort) error {
		if t, ok := ctx.Value(traceKey{}).(*probeTrace); ok {
			t.tcp = true // the Checker's event loop may run the next ones
		}
		conn, err := dial(ctx, d, addr)
		if err != nil {
			return shortError(err)
		}
		// The connect was the check; a failing close says nothing about
		// the endpoint.
		_ = conn.SetLinger(0)
		_ = conn.Close()
		return nil
	}
}
