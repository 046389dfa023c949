package health

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
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
// it; then on the ring again at the pace of TestProbeScale (every
// connection every 500ms, in a batch every 50ms); and a last time with a
// multishot receive armed on each connection (see newMultishot). It
// reports user and system time per exchange, how many exchanges a second
// that is, and what 20,000 a second cost at that price (measured, for
// the paced run).
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
	// exchange runs batches until deadline; every is how often a batch
	// starts (0: as soon as the last one is answered).
	var every time.Duration
	exchange := func(ring *uring, deadline time.Time) (count int) {
		tick := time.Now()
		for next := 0; time.Now().Before(deadline); {
			if every > 0 {
				tick = tick.Add(every)
				time.Sleep(time.Until(tick))
			}
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
	// GSLBD_PROBE_FLOOR_RUNS picks the runs, by name, comma-separated
	// (plain, ring, paced, multishot; default all): paced alone, taken
	// in turns with TestProbeScale, compares the Checker with its floor
	// when the machine's speed drifts between runs.
	runs := os.Getenv("GSLBD_PROBE_FLOOR_RUNS")
	if runs == "" {
		runs = "plain,ring,paced,multishot"
	}
	want := func(name string) bool { return slices.Contains(strings.Split(runs, ","), name) }
	measure := func(name, how string, ring *uring) {
		if !want(name) {
			return
		}
		exchange(ring, time.Now().Add(time.Second)) // warm up
		user0, sys0 := cpuTime()
		helper0, wall0 := processesCPU(helperPIDs), time.Now()
		count := exchange(ring, wall0.Add(time.Duration(secs)*time.Second))
		wall := time.Since(wall0)
		user1, sys1 := cpuTime()
		helper := processesCPU(helperPIDs) - helper0
		cpu := user1 + sys1 - user0 - sys0
		t.Logf("%s: %d connections, %s: %d exchanges, %.0f/s; per exchange %.1fµs user, %.1fµs system; %.3f of a core for 20,000 a second (%.3f measured); this/helpers %.2f",
			how, len(fds), wall.Round(time.Millisecond), count, float64(count)/wall.Seconds(),
			float64((user1-user0).Microseconds())/float64(count), float64((sys1-sys0).Microseconds())/float64(count),
			cpu.Seconds()/float64(count)*20000, cpu.Seconds()/wall.Seconds(), cpu.Seconds()/max(helper.Seconds(), 1e-9))
	}
	measure("plain", "a system call each", nil)
	ring, err := newURing(uint32(len(events)))
	if err != nil {
		t.Logf("io_uring: refused (%v): not measured", err)
		return
	}
	defer ring.close()
	measure("ring", "io_uring", ring)

	// The same at TestProbeScale's pace: each connection's exchange
	// every 500ms, started in batches every 50ms (the scheduler's
	// maxSlack), so that the figure is that of the Checker's exchanges
	// at their own rate, which batch less than a saturated run's.
	saved := batch
	every, batch = maxSlack, max(len(fds)*int(maxSlack)/int(500*time.Millisecond), 1)
	measure("paced", fmt.Sprintf("io_uring, every connection every 500ms (%d every %s)", batch, every), ring)
	every, batch = 0, saved

	// The same with multishot receives: each connection has one receive
	// that stays armed on the ring, into buffers the kernel picks from a
	// ring of them, and the exchanges wait on the ring, not on epoll: no
	// epoll and no submission per read. It measured no cheaper than the
	// plain ring (the kernel's work is the exchange itself), which is
	// why the Checker's loop does not use it.
	if !want("multishot") {
		return
	}
	for _, fd := range fds {
		syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	}
	// The kernel completes the receives in the thread that armed them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ms, err := newMultishot(fds)
	if err != nil {
		t.Logf("io_uring multishot: refused (%v): not measured", err)
		return
	}
	defer ms.close()
	exchange = func(_ *uring, deadline time.Time) (count int) {
		for next := 0; time.Now().Before(deadline); {
			for range batch {
				ms.send(next, req)
				next = (next + 1) % len(fds)
			}
			for waiting := batch; waiting > 0; {
				k, err := ms.wait()
				if err != nil {
					t.Fatal(err)
				}
				waiting -= k
				count += k
			}
		}
		return count
	}
	measure("multishot", "io_uring multishot", nil)
}

// multishot runs TestProbeFloor's exchanges with multishot receives
// (IORING_RECV_MULTISHOT) into a ring of provided buffers, on a ring set
// up with DEFER_TASKRUN: completions are posted when the thread that
// armed them waits on the ring.
type multishot struct {
	r       *uring
	fds     []int
	bufRing []byte // the kernel's ring of buffers: 16 bytes an entry
	bufs    []byte
	tail    uint16
}

const (
	msBufs     = 1024
	msSendTag  = 1 << 62
	msBufGroup = 7
)

func newMultishot(fds []int) (*multishot, error) {
	// Without DEFER_TASKRUN the kernel interrupts this thread to post
	// each completion, and the receives cost more than on the plain ring
	// (9.9 against 7.9µs of system time per exchange, in one run).
	const singleIssuer, deferTaskrun = 1 << 12, 1 << 13
	r, err := newURingFlags(1024, singleIssuer|deferTaskrun)
	if err != nil {
		return nil, err
	}
	m := &multishot{r: r, fds: fds, bufs: make([]byte, msBufs*ringSlot)}
	m.bufRing, err = syscall.Mmap(-1, 0, msBufs*16, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		r.close()
		return nil, err
	}
	reg := struct {
		addr    uint64
		entries uint32
		bgid    uint16
		flags   uint16
		_       [3]uint64
	}{addr: uint64(uintptr(unsafe.Pointer(&m.bufRing[0]))), entries: msBufs, bgid: msBufGroup}
	const sysIOURingRegister, registerPbufRing = 427, 22
	if _, _, errno := syscall.Syscall6(sysIOURingRegister, uintptr(r.fd), registerPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); errno != 0 {
		m.close()
		return nil, os.NewSyscallError("io_uring_register", errno)
	}
	for bid := range msBufs {
		m.recycle(uint16(bid))
	}
	for i := range fds {
		m.arm(i)
	}
	if err := m.enter(0); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

func (m *multishot) close() {
	m.r.close()
	if m.bufRing != nil {
		syscall.Munmap(m.bufRing)
	}
}

// recycle gives buffer bid back to the kernel.
func (m *multishot) recycle(bid uint16) {
	e := m.bufRing[int(m.tail&(msBufs-1))*16:]
	*(*uint64)(unsafe.Pointer(&e[0])) = uint64(uintptr(unsafe.Pointer(&m.bufs[int(bid)*ringSlot])))
	*(*uint32)(unsafe.Pointer(&e[8])) = ringSlot
	*(*uint16)(unsafe.Pointer(&e[12])) = bid
	m.tail++
	// The ring's tail is the u16 at offset 14, over the first entry's
	// unused last field: stored with the first entry's bid beside it, in
	// one aligned 32-bit store, there being no 16-bit one.
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&m.bufRing[12])), uint32(m.tail)<<16|uint32(*(*uint16)(unsafe.Pointer(&m.bufRing[12]))))
}

func (m *multishot) push(sqe uringSQE) {
	if m.r.room() == 0 {
		if err := m.enter(0); err != nil {
			panic(err)
		}
	}
	m.r.push(sqe)
}

// arm starts connection i's multishot receive.
func (m *multishot) arm(i int) {
	const bufferSelect, recvMultishot = 1 << 5, 1 << 1
	m.push(uringSQE{opcode: uringOpRecv, flags: bufferSelect, ioprio: recvMultishot, fd: int32(m.fds[i]), bufIndex: msBufGroup, userData: uint64(i)})
}

func (m *multishot) send(i int, req []byte) {
	m.push(uringSQE{opcode: uringOpSend, fd: int32(m.fds[i]), addr: uint64(uintptr(unsafe.Pointer(&req[0]))), len: uint32(len(req)),
		msgFlags: syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL, userData: msSendTag | uint64(i)})
}

// enter submits what is queued and waits for wait completions.
func (m *multishot) enter(wait uint32) error {
	flags := uintptr(0)
	if wait > 0 {
		flags = uringEnterGetEvents
	}
	for {
		_, _, errno := syscall.Syscall6(sysIOURingEnter, uintptr(m.r.fd), uintptr(m.r.queued), uintptr(wait), flags, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		m.r.queued = 0
		if errno != 0 {
			return os.NewSyscallError("io_uring_enter", errno)
		}
		return nil
	}
}

// wait submits what is queued, waits for a completion, and returns how
// many answers the completions carried.
func (m *multishot) wait() (int, error) {
	for {
		head, tail := *m.r.cqHead, atomic.LoadUint32(m.r.cqTail)
		if head == tail {
			if err := m.enter(1); err != nil {
				return 0, err
			}
			continue
		}
		answers := 0
		for ; head != tail; head++ {
			c := m.r.cqes[head&m.r.cqMask]
			const cqeBuffer, cqeMore = 1 << 0, 1 << 1
			switch {
			case c.userData&msSendTag != 0:
				if c.res <= 0 {
					return 0, fmt.Errorf("send: %d", c.res)
				}
			default:
				if c.flags&cqeBuffer != 0 {
					m.recycle(uint16(c.flags >> 16))
				}
				if c.res > 0 {
					answers++
				} else if c.res != -int32(syscall.ENOBUFS) {
					return 0, fmt.Errorf("recv: %d", c.res)
				}
				if c.flags&cqeMore == 0 {
					m.arm(int(c.userData))
				}
			}
		}
		atomic.StoreUint32(m.r.cqHead, head)
		return answers, nil
	}
}
