package resolver

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/dnstest"
	"github.com/gslbd/gslbd/internal/proctest"
	"github.com/gslbd/gslbd/internal/testwait"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestUDPRecvBuffer: the DNS sockets get a receive buffer large enough to
// ride out a reader that is not scheduled for a moment (the kernel
// reports twice what was set, for its bookkeeping). Without privilege
// the system's net.core.rmem_max caps it.
func TestUDPRecvBuffer(t *testing.T) {
	conns, err := ListenUDP("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		defer c.Close()
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		rc.Control(func(fd uintptr) { got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
		want := RecvBuffer
		if os.Geteuid() != 0 {
			if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
				var max int
				fmt.Sscan(string(b), &max)
				want = min(want, max)
			}
		}
		if got < want {
			t.Errorf("receive buffer %d bytes, want at least %d", got, want)
		}
	}
}

// TestUDPCoalescePolicy: which reads the reader pauses after, and how
// long: only those of a few queries, never a lone query (its answer is
// not held back behind a pause) nor a read that already carries many.
func TestUDPCoalescePolicy(t *testing.T) {
	s := &UDPServer{}
	s.SetCoalesce(20 * time.Microsecond)
	for n, want := range map[int]time.Duration{0: 0, 1: 0, 2: 20 * time.Microsecond, 15: 20 * time.Microsecond, 16: 0, 32: 0} {
		if got := s.pauseFor(n); got != want {
			t.Errorf("after a read of %d: pause %v, want %v", n, got, want)
		}
	}
	s.SetCoalesce(0)
	if got := s.pauseFor(3); got != 0 {
		t.Errorf("coalescing off: pause %v after a read of 3, want none", got)
	}
}

// TestUDPCoalesce queues queries on a real socket before its reader
// starts, so that its first read returns them together, and checks that
// every query is answered and that the reader paused (once, for the
// configured time) exactly when the read carried a few queries: after
// three, not after one, and not after twenty.
func TestUDPCoalesce(t *testing.T) {
	for _, tc := range []struct {
		queued int
		pauses uint64
	}{{1, 0}, {3, 1}, {20, 0}} {
		t.Run(fmt.Sprint(tc.queued), func(t *testing.T) {
			conns, err := ListenUDP("127.0.0.1:0", 1)
			if err != nil {
				t.Fatal(err)
			}
			r, reg := newResolver(t, Config{})
			r.Publish(State{Zones: testSet(t)})
			srv := r.NewUDPServer(conns, 0)
			srv.SetCoalesce(123 * time.Microsecond)
			var paused []time.Duration         // only the reader's goroutine appends
			pausing := make(chan struct{}, 32) // more than a test makes: the reader never blocks on it
			srv.pause = func(d time.Duration) {
				paused = append(paused, d)
				pausing <- struct{}{}
			}

			client, err := net.DialUDP("udp", nil, conns[0].LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			port := conns[0].LocalAddr().(*net.UDPAddr).Port
			one := 0 // bytes the kernel counts for one query
			for i := range tc.queued {
				m := dnstest.Case{Qname: "mail.example.org.", Qtype: dns.TypeA}.Msg()
				m.Id = uint16(i + 1)
				pkt, _ := m.Pack()
				if _, err := client.Write(pkt); err != nil {
					t.Fatal(err)
				}
				// Wait until the kernel has queued it on the server's socket.
				if i == 0 {
					testwait.Until(t, 5*time.Second, "first query queued", func() bool { return udpQueued(t, port) > 0 })
					one = udpQueued(t, port)
				}
			}
			if tc.queued > 1 {
				// Every query is as large as the first.
				testwait.Until(t, 5*time.Second, "queries queued", func() bool { return udpQueued(t, port) >= one*tc.queued })
			}

			done := make(chan error, 1)
			go func() { done <- srv.Serve(nil) }()
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1500)
			for i := range tc.queued {
				n, err := client.Read(buf)
				if err != nil {
					t.Fatalf("reply %d of %d: %v", i+1, tc.queued, err)
				}
				var m dns.Msg
				if err := m.Unpack(buf[:n]); err != nil || len(m.Answer) == 0 {
					t.Fatalf("reply %d: %v %v", i+1, err, m)
				}
			}
			// The reader pauses after it sent the replies, and not once
			// Shutdown began: wait for the pauses expected (for at most
			// 5s) before shutting down, or the test races the reader.
			for range tc.pauses {
				select {
				case <-pausing:
				case <-time.After(5 * time.Second):
				}
			}
			if err := srv.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			reads, pauses := metricValue(t, reg, "gslb_resolver_udp_reads_total"), metricValue(t, reg, "gslb_resolver_udp_read_pauses_total")
			if reads != 1 {
				t.Fatalf("%d queued queries took %v reads, want 1", tc.queued, reads)
			}
			if uint64(len(paused)) != tc.pauses || pauses != float64(tc.pauses) {
				t.Errorf("after a read of %d: paused %v (counted %v), want %d pause(s)", tc.queued, paused, pauses, tc.pauses)
			}
			for _, d := range paused {
				if d != 123*time.Microsecond {
					t.Errorf("paused %v, want the configured 123µs", d)
				}
			}
		})
	}
}

// udpQueued is proctest.UDPQueued, failing the test on an error.
func udpQueued(t *testing.T, port int) int {
	t.Helper()
	n, err := proctest.UDPQueued(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
