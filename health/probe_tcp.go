package health

import (
	"context"
	"net/netip"
)

// NewTCPProbe returns a [Probe] that opens a TCP connection to the
// endpoint and closes it at once. It proves that something accepts
// connections, nothing more.
func NewTCPProbe() Probe {
	d := newDialer()
	return func(ctx context.Context, addr netip.AddrPort) error {
		conn, err := dial(ctx, d, addr)
		if err != nil {
			return shortError(err)
		}
		// The connect was the check; a failing close says nothing about
		// the endpoint.
		_ = conn.Close()
		return nil
	}
}
