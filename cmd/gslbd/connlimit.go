package main

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener caps the connections a listener holds open, in total and
// per client address (IPv6: per /64). A connection over either cap is closed as soon as
// it is accepted, with a reset (no TIME_WAIT kept on our side), and
// counted; Accept then waits for the next one. An accepted connection
// counts until it is closed. Listeners may share the metrics.
//
// It is what keeps a flood of idle TCP connections from one client from
// taking every file descriptor of the node (whose probes then fail) or
// every slot from the other clients.
type limitListener struct {
	net.Listener
	max, perClient int
	refused        *prometheus.CounterVec // by limit: total, per_client
	open           prometheus.Gauge

	mu    sync.Mutex
	total int
	per   map[netip.Addr]int
}

func newLimitListener(ln net.Listener, max, perClient int, refused *prometheus.CounterVec, open prometheus.Gauge) *limitListener {
	return &limitListener{Listener: ln, max: max, perClient: perClient, refused: refused, open: open,
		per: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		if reason := l.take(addr); reason != "" {
			l.refused.WithLabelValues(reason).Inc()
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l, addr: addr}, nil
	}
}

// take counts a new connection from addr, or says which cap refuses it.
func (l *limitListener) take(addr netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.max:
		return "total"
	case l.per[addr] >= l.perClient:
		return "per_client"
	}
	l.total++
	l.per[addr]++
	l.open.Inc()
	return ""
}

func (l *limitListener) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.per[addr]--; l.per[addr] <= 0 {
		delete(l.per, addr)
	}
	l.open.Dec()
}

// remoteAddr is the client a connection counts against: its IPv4
// address, or its IPv6 /64, since one IPv6 host usually has a whole /64
// to pick source addresses from.
func remoteAddr(c net.Conn) netip.Addr {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	addr := a.AddrPort().Addr().Unmap()
	if addr.Is6() {
		p, _ := addr.WithZone("").Prefix(64)
		return p.Addr()
	}
	return addr
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	l      *limitListener
	addr   netip.Addr
	closed atomic.Bool
}

func (c *limitConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.addr)
	}
	return c.Conn.Close()
}
