package health

import (
	"net"
	"syscall"
	"testing"
)

// tcpPair returns the descriptors of both ends of a loopback TCP
// connection, non-blocking and outside the runtime's poller.
func tcpPair(t *testing.T) (a, b int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return ownFD(t, c.(*net.TCPConn)), ownFD(t, s.(*net.TCPConn))
}

// ownFD returns a non-blocking descriptor of conn's socket of the test's
// own, outside the runtime's poller (as the loop holds its sockets),
// closed when the test ends; conn itself is closed.
func ownFD(t *testing.T, conn *net.TCPConn) int {
	t.Helper()
	f, err := conn.File()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetNonblock(fd, true)
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}

// requireURing returns an io_uring of entries, closed when the test ends,
// or skips the test, saying why, where the kernel refuses io_uring.
func requireURing(t *testing.T, entries uint32) *uring {
	t.Helper()
	r, err := newURing(entries)
	if err != nil {
		t.Skipf("the kernel refuses io_uring (%v): the loop's ring is not tested here", err)
	}
	t.Cleanup(r.close)
	return r
}

// TestURing: a batch on the ring is done when submit returns, each
// operation with the result of the plain system call: bytes sent, bytes
// read, EAGAIN for a read with nothing to read (it never waits), and
// EPIPE for a send on a connection that was shut down (with no SIGPIPE).
func TestURing(t *testing.T) {
	r := requireURing(t, 4)
	a, b := tcpPair(t)
	c, _ := tcpPair(t)
	if err := syscall.Shutdown(c, syscall.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 16)
	empty := make([]byte, 16)
	type result struct {
		res  int32
		seen bool
	}
	results := make([]result, 4)
	run := func() {
		t.Helper()
		if r.room() != 0 {
			t.Fatalf("room for %d more after 4 of 4, want none", r.room())
		}
		n, err := r.submit(func(tag uint64, res int32) {
			if results[tag].seen {
				t.Errorf("operation %d reported twice", tag)
			}
			results[tag] = result{res, true}
		})
		if err != nil || n != 4 {
			t.Fatalf("submit: %d taken, %v; want 4", n, err)
		}
		if r.room() != 4 {
			t.Errorf("room for %d after submit, want 4", r.room())
		}
	}
	// The send arrives on loopback before the read in the same batch is
	// made.
	r.queue(uringOpSend, a, []byte("ping"), 0)
	r.queue(uringOpRecv, b, got, 1)
	r.queue(uringOpRecv, a, empty, 2)
	r.queue(uringOpSend, c, []byte("x"), 3)
	run()
	want := []int32{4, 4, -int32(syscall.EAGAIN), -int32(syscall.EPIPE)}
	for i, w := range want {
		if !results[i].seen || results[i].res != w {
			t.Errorf("operation %d: %+v, want %d", i, results[i], w)
		}
	}
	if string(got[:4]) != "ping" {
		t.Errorf("read %q, want ping", got[:4])
	}
	// The ring is used again and again: its queues wrap around.
	for round := range 5 {
		clear(results)
		r.queue(uringOpSend, b, []byte("pong"), 0)
		r.queue(uringOpRecv, a, got, 1)
		r.queue(uringOpSend, a, []byte("p"), 2)
		r.queue(uringOpRecv, b, got[8:], 3)
		run()
		for i, w := range []int32{4, 4, 1, 1} {
			if results[i].res != w {
				t.Errorf("round %d, operation %d: %+v, want %d", round, i, results[i], w)
			}
		}
	}
}
