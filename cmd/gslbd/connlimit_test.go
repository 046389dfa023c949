package main

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/internal/testwait"
)

// TestLimitListener holds connections from several client addresses
// against both caps, then frees a slot by closing one.
func TestLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"limit"})
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"})
	ln := newLimitListener(raw, 4, 3, refused, open)
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			return nil // reset on arrival before the dial returned
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// held waits for the server side of the next connection let through.
	held := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("connection not accepted")
			return nil
		}
	}
	waitRefused := func(limit string, n float64) {
		t.Helper()
		testwait.Until(t, 5*time.Second, "refusal counted", func() bool { return testutil.ToFloat64(refused.WithLabelValues(limit)) == n })
	}
	var server []net.Conn
	for range 3 {
		dial("127.0.0.2")
		server = append(server, held())
	}
	dial("127.0.0.2") // a 4th from the same address
	waitRefused("per_client", 1)
	dial("127.0.0.3")
	server = append(server, held())
	dial("127.0.0.4") // a 5th in total
	waitRefused("total", 1)
	if got := testutil.ToFloat64(open); got != 4 {
		t.Errorf("open = %v, want 4", got)
	}
	// Closing one (twice: counted once) frees one slot.
	server[0].Close()
	server[0].Close()
	if got := testutil.ToFloat64(open); got != 3 {
		t.Errorf("open after a close = %v, want 3", got)
	}
	dial("127.0.0.4")
	held()
	if got := testutil.ToFloat64(open); got != 4 {
		t.Errorf("open = %v, want 4", got)
	}
}

// TestLimitListenerIPv6Prefix: IPv6 clients count per /64.
func TestLimitListenerIPv6Prefix(t *testing.T) {
	raw, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"limit"})
	ln := newLimitListener(raw, 10, 1, refused, prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	defer func() { ln.Close(); <-done }()
	for range 2 {
		if c, err := net.Dial("tcp", raw.Addr().String()); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	testwait.Until(t, 5*time.Second, "the second connection from ::1/64 refused", func() bool {
		return testutil.ToFloat64(refused.WithLabelValues("per_client")) == 1
	})
}
