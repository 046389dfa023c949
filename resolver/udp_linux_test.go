package resolver

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestBatchWildcard receives queries waiting on a socket bound to the
// wildcard address with one recv, and sends every reply with one flush:
// each reply must reach its client from the address that client wrote
// to, carrying what was queued for it.
func TestBatchWildcard(t *testing.T) {
	conns, err := ListenUDP("0.0.0.0:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := conns[0]
	defer srv.Close()
	b, err := newBatch(srv, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if !b.pktinfo {
		t.Fatal("no packet info asked for on a wildcard socket")
	}
	port := strconv.Itoa(srv.LocalAddr().(*net.UDPAddr).Port)
	// Clients on 127.0.0.1, writing to 127.0.0.1, 127.0.0.2, ...
	const n = 10
	var clients []*net.UDPConn
	for i := range n {
		c, err := net.Dial("udp", net.JoinHostPort("127.0.0."+strconv.Itoa(1+i%3), port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("query " + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c.(*net.UDPConn))
	}
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	srv.SetReadDeadline(deadline)
	for got < n {
		k, err := b.recv()
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 && k < 2 {
			// All ten were written before the first recv: they wait
			// together.
			t.Errorf("first recv = %d packets, want several", k)
		}
		for i := range k {
			pkt, from := b.packet(i)
			want := clients[pkt[len(pkt)-1]-'0'].LocalAddr().(*net.UDPAddr).AddrPort()
			if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != want {
				t.Errorf("packet %q from %v, want %v", pkt, from, want)
			}
			b.queue(i, append(b.buffer(), append([]byte("reply to "), pkt...)...))
		}
		b.flush()
		got += k
	}
	for i, c := range clients {
		c.SetReadDeadline(deadline)
		buf := make([]byte, 512)
		m, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if want := "reply to query " + strconv.Itoa(i); !bytes.Equal(buf[:m], []byte(want)) {
			t.Errorf("client %d got %q, want %q", i, buf[:m], want)
		}
		if want := c.RemoteAddr().(*net.UDPAddr).AddrPort(); netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != want {
			t.Errorf("client %d: reply from %v, want %v", i, src, want)
		}
	}
}
