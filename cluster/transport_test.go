package cluster

import (
	"bytes"
	"io"
	"log"
	"net"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/proctest"
)

// TestTransport: packets arrive whole, each in a slice of exactly its
// length that later packets do not overwrite (memberlist keeps what it is
// handed), streams are accepted, the advertised address is the bound one,
// and Shutdown ends both listeners.
func TestTransport(t *testing.T) {
	tr, err := newTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != tr.port() || port == 0 {
		t.Fatalf("FinalAdvertiseAddr = %v %d %v, want 127.0.0.1 and the bound port %d", ip, port, err, tr.port())
	}
	if ip, port, err := tr.FinalAdvertiseAddr("192.0.2.7", 7946); err != nil || !ip.Equal(net.IPv4(192, 0, 2, 7)) || port != 7946 {
		t.Errorf("FinalAdvertiseAddr(192.0.2.7, 7946) = %v %d %v", ip, port, err)
	}
	addr := (&net.UDPAddr{IP: ip, Port: port}).String()

	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	to, _ := net.ResolveUDPAddr("udp", addr)
	first, second := bytes.Repeat([]byte{'a'}, 1400), bytes.Repeat([]byte{'b'}, 60)
	var got [][]byte
	for _, p := range [][]byte{first, second} {
		if _, err := client.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
		select {
		case pkt := <-tr.PacketCh():
			if pkt.From.String() != client.LocalAddr().String() {
				t.Errorf("packet from %v, want %v", pkt.From, client.LocalAddr())
			}
			if pkt.Timestamp.IsZero() {
				t.Error("packet without a timestamp")
			}
			got = append(got, pkt.Buf)
		case <-time.After(5 * time.Second):
			t.Fatal("no packet within 5s")
		}
	}
	for i, want := range [][]byte{first, second} {
		if !bytes.Equal(got[i], want) || cap(got[i]) != len(want) {
			t.Errorf("packet %d: %d bytes (capacity %d), intact %v; want %d bytes in a slice of its own length",
				i, len(got[i]), cap(got[i]), bytes.Equal(got[i], want), len(want))
		}
	}

	// A packet the other way, and a stream.
	if _, err := tr.WriteTo([]byte("ping"), client.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if n, _, err := client.ReadFrom(buf); err != nil || string(buf[:n]) != "ping" {
		t.Errorf("packet sent: %q %v", buf[:n], err)
	}
	conn, err := tr.DialTimeout(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case in := <-tr.StreamCh():
		in.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no stream accepted within 5s")
	}

	done := make(chan struct{})
	go func() {
		tr.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return within 5s")
	}
}

// TestTransportShutdownUnread: a transport whose packets nobody reads
// (memberlist failed to start after it was made) still shuts down.
func TestTransportShutdownUnread(t *testing.T) {
	tr, err := newTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("udp", (&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tr.port()}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	// Wait until the reader has taken the packet off the socket: it then
	// holds it, waiting for someone to take it in turn.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		queued, err := proctest.UDPQueued(tr.port())
		if err != nil {
			t.Skipf("cannot see the packet read: %v", err)
		}
		if queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("packet still queued on the socket after 5s (%d bytes)", queued)
		}
	}
	done := make(chan struct{})
	go func() {
		tr.Shutdown()
		tr.Shutdown() // a second call does nothing
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown with a packet nobody read did not return within 5s")
	}
}
