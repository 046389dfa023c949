package health

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestProbeFloor measures what the kernel alone charges this process for
// the exchange of an HTTP probe on a kept loopback connection, one write
// of the request and one read of the response, with nothing of the
// Checker around it: the floor under TestProbeScale's figures. On demand:
//
//	GSLBD_PROBE_FLOOR=10000 go test -run TestProbeFloor -count=1 -v ./health/
//
// It opens that many connections to TestProbeScale's helper endpoints,
// then for GSLBD_PROBE_SCALE_SECONDS (default 10) writes a request on
// each of a batch of 400 connections (all of them, when fewer), as the
// Checker's scheduler starts probes in batches, waits with epoll until
// each has answered and reads it, and starts the next batch, as fast as
// it can. It does so twice: with a system call per read and write, and
// then with the batch's writes, and the reads of each harvest, in one
// call on an io_uring, as the Checker's loop does where the kernel allows
// it. It reports user and system time per exchange, and how many
// exchanges a second that is.
func TestProbeFloor(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GSLBD_PROBE_FLOOR"))
	if n <= 0 {
		t.Skip("on demand: set GSLBD_PROBE_FLOOR=10000 (connections) to measure the kernel's cost of an exchange")
	}
	secs := scaleSeconds(10)
	ports, helperPIDs := startHelperEndpoints(t, n)
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	fds := make([]int, len(ports))
	for i, p := range ports {
		conn, err := net.DialTCP("tcp", nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)})
		if err != nil {
			t.Fatal(err)
		}
		fd := ownFD(t, conn)
		fds[i] = fd
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: int32(i)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			t.Fatal(err)
		}
	}
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: gslbd-health\r\nAccept-Encoding: identity\r\n\r\n")
	events := make([]syscall.EpollEvent, 256)
	bufs := make([]byte, len(events)*ringSlot)
	// At most one request in flight per connection: two answers that
	// arrive in one read would be counted once.
	batch := min(400, len(fds))
	check := func(what string, n int, err error) {
		if err != nil || n <= 0 {
			t.Fatalf("%s: %d, %v", what, n, err)
		}
	}
	// io makes a batch of sends (read false) or reads of fds[i] for i
	// in idx, with a system call each, or on ring when it is not nil.
	io := func(ring *uring, read bool, idx func(yield func(i, fd int) bool)) {
		op := uint8(uringOpSend)
		if read {
			op = uringOpRecv
		}
		submit := func() {
			_, err := ring.submit(func(_ uint64, res int32) { check("ring", int(res), nil) })
			check("submit", 1, err)
		}
		for i, fd := range idx {
			b := req
			if read {
				b = bufs[i*ringSlot : (i+1)*ringSlot]
			}
			if ring != nil {
				if ring.room() == 0 {
					submit()
				}
				ring.queue(op, fd, b, 0)
				continue
			}
			var n int
			var err error
			if read {
				n, err = syscall.Read(fd, b)
			} else {
				n, err = syscall.Write(fd, b)
			}
			check("plain", n, err)
		}
		if ring != nil {
			submit()
		}
	}
	exchange := func(ring *uring, deadline time.Time) (count int) {
		for next := 0; time.Now().Before(deadline); {
			io(ring, false, func(yield func(i, fd int) bool) {
				for i := range batch {
					yield(i, fds[next])
					next = (next + 1) % len(fds)
				}
			})
			for waiting := batch; waiting > 0; {
				k, err := syscall.EpollWait(epfd, events, 1000)
				if err != nil && err != syscall.EINTR {
					t.Fatal(err)
				}
				if k == 0 {
					t.Fatalf("%d answers still missing after 1s", waiting)
				}
				io(ring, true, func(yield func(i, fd int) bool) {
					for i, ev := range events[:max(k, 0)] {
						yield(i, fds[ev.Fd])
					}
				})
				waiting -= max(k, 0)
				count += max(k, 0)
			}
		}
		return count
	}
	measure := func(how string, ring *uring) {
		exchange(ring, time.Now().Add(time.Second)) // warm up
		user0, sys0 := cpuTime()
		helper0, wall0 := processesCPU(helperPIDs), time.Now()
		count := exchange(ring, wall0.Add(time.Duration(secs)*time.Second))
		wall := time.Since(wall0)
		user1, sys1 := cpuTime()
		helper := processesCPU(helperPIDs) - helper0
		cpu := user1 + sys1 - user0 - sys0
		t.Logf("%s: %d connections, %s: %d exchanges, %.0f/s; per exchange %.1fµs user, %.1fµs system; %.3f of a core for 20,000 a second; this/helpers %.2f",
			how, len(fds), wall.Round(time.Millisecond), count, float64(count)/wall.Seconds(),
			float64((user1-user0).Microseconds())/float64(count), float64((sys1-sys0).Microseconds())/float64(count),
			cpu.Seconds()/float64(count)*20000, cpu.Seconds()/max(helper.Seconds(), 1e-9))
	}
	measure("a system call each", nil)
	ring, err := newURing(uint32(len(events)))
	if err != nil {
		t.Logf("io_uring: refused (%v): not measured", err)
		return
	}
	defer ring.close()
	measure("io_uring", ring)
}
