//go:build linux

package health

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// loop runs the probes of plain HTTP checks on the connections they keep,
// and the connects of tcp checks, for every group at once, on one
// goroutine that owns an epoll instance and the sockets: it writes each
// request as its probe falls due, reads the response when the socket says
// it has arrived, judges it with the same code as a probe on its own
// goroutine (judge), and times probes out from a heap of deadlines, with
// no goroutine, context, timer or allocation per probe. New HTTP
// connections are made elsewhere: a group's probe runs on a goroutine of
// its own (dial, request, response) until it has a connection worth
// keeping, which it then hands over to the loop (Checker.handOver); the
// loop gives the group back to that path whenever the connection goes (a
// failure, "Connection: close", retirement, a reload that changed the
// check, the endpoint closing it). So the rules for kept connections are
// those of NewHTTPProbe, whoever runs the probe. A tcp check is handed
// over after its first probe (Checker.handOverConnect) and stays: each
// probe is a non-blocking connect whose socket is closed with a reset as
// soon as the kernel says how it went, as NewTCPProbe's are.
//
// Everything but submit, kick, forget, adopt and stop belongs to the
// goroutine of run.
type loop struct {
	c *Checker
	// epfd is the epoll instance of the sockets and evfd.
	epfd int
	// bell is an epoll instance that holds epfd alone, armed (armed)
	// while run waits and disarmed while it works, and ep is bell as a
	// file of the Go runtime's poller: run waits there, as a goroutine
	// waits on a socket, rather than blocking a thread in epoll_wait.
	//
	// Why not epfd itself in the poller: the poller's thread that waits
	// in epoll_wait (one of the runtime's idle threads) is then woken by
	// every answer that arrives while run is busy with others, or
	// waiting for the next batch, and finds nothing to do: at 20,000
	// probes a second, a thousand context switches a second, each at the
	// price of a few probes. bell is one-shot: once run has been woken,
	// answers make no sound until run waits again (see wait).
	bell  int
	armed bool
	ep    *os.File
	raw   syscall.RawConn
	evfd  int // an eventfd that wakes run for new messages
	epoch time.Time

	// mu guards the fields below.
	mu      sync.Mutex
	msgs    []loopMsg
	stopped bool

	conns []*loopConn // by token, the epoll data of the socket
	free  []int32     // unused tokens
	heap  []*loopConn // connections with a probe in flight, by deadline
	batch []loopMsg
	// due are the groups whose probes fell due, waiting to start from
	// next on (see roundConnects).
	due     []*group
	next    int
	keys    []dueKey // sortDue's
	events  [256]syscall.EpollEvent
	scratch []byte // what one read fills
	r       bufio.Reader
	src     loopSource

	// ring, when the kernel offers io_uring, makes the sends of a batch
	// of probes, and the first reads of the answers one harvest found,
	// in one system call per ringEntries (see uring): pend are the
	// operations queued on it, and slots the buffers of the reads,
	// ringSlot bytes each, the i-th for pend[i]. Without it each is a
	// system call of its own (plain).
	ring  *uring
	pend  []ringOp
	slots []byte

	// handled counts the probes the loop finished, wakes the times it
	// woke up, and ringOps the operations made on its ring, for tests.
	handled, wakes, ringOps atomic.Int64
}

// loopConn is a kept connection the loop holds for a group.
type loopConn struct {
	fd    int
	token int32
	g     *group
	gc    *groupConfig // the group's check when the connection was made
	p     *httpProbe
	req   []byte // the request, built once
	// retire is when the connection is let go rather than used again, in
	// nanoseconds since the loop's epoch.
	retire int64
	// peer says that the endpoint sent something or closed the
	// connection while no probe was waiting: it is not used again.
	peer bool
	// exchanges counts the exchanges completed on the connection, for
	// sampling the kernel's round trip (see sampleRTT).
	exchanges uint32

	// owed says that a probe timed out waiting for its answer: the
	// answer is still read when it comes, and if it leaves the
	// connection clean before the next probe, that probe uses it.
	owed bool
	// connect says that the group's check is a tcp check: each probe
	// opens a socket of its own (fd, -1 between probes), and closes it
	// with a reset once connected, as NewTCPProbe does; req is then the
	// endpoint's address as connect(2) takes it.
	connect bool

	// The probe in flight, while busy.
	start time.Time
	// deadline is when the heap wakes the loop for the probe, in
	// nanoseconds since the loop's epoch: while hedgeDue, half its
	// timeout, when its hedge starts if a member of the group is Up then
	// (see hedge), and after that end, the timeout itself.
	deadline, end int64
	hedgeDue      bool
	// hedged says that the probe's hedge runs: its result goes to the
	// hedge (hedge.deliver), which finishes both.
	hedged   bool
	timeout  time.Duration
	interval time.Duration
	// hidx is the connection's place in the loop's heap while a probe
	// is in flight on it, and -1 otherwise.
	hidx int
	got  []byte // what came back so far when it came in parts
	eof  bool
}

// ringOp is a send of lc's request, or a read of its answer after the
// events epoll reported.
type ringOp struct {
	lc     *loopConn
	op     uint8
	events uint32
}

// ringSlot is the size of a read on the ring: a health endpoint's answer
// fits in one, and what does not is read on with plain reads.
const ringSlot = 4096

// ringEntries bounds the operations of one call on the ring. The call is
// a raw system call (see rawRead), which keeps the loop's P until it
// returns, and so holds up a stop of the world (the garbage collector's)
// for as long: 64 exchanges take well under a millisecond, and already
// spread the cost of entering the kernel over 64. Larger batches saved
// nothing measurable (TestProbeScale).
const ringEntries = 64

type loopMsg struct {
	op uint8
	g  *group
	lc *loopConn
}

const (
	msgStart  = iota // the group's probe is due
	msgAdopt         // hold lc for the group
	msgForget        // the group is gone: close its connection
)

// maxLoopResponse bounds what the loop keeps of one response. A response
// the probe reads (head up to maxHead, a searched or discarded body up to
// maxBody, chunk framing) fits in well under it; more is an endpoint that
// does not stop.
const maxLoopResponse = 4 * (maxHead + maxBody)

// epollET is EPOLLET as the uint32 of an epoll event's mask.
const epollET = 1 << 31

func newLoop(c *Checker) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	evfd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(evfd), &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(int(evfd))
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	bell, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err == nil {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT}
		if err = syscall.EpollCtl(bell, syscall.EPOLL_CTL_ADD, epfd, &ev); err == nil {
			err = syscall.SetNonblock(bell, true)
		}
		if err != nil {
			syscall.Close(bell)
		}
	}
	if err != nil {
		syscall.Close(epfd)
		syscall.Close(int(evfd))
		return nil, os.NewSyscallError("epoll", err)
	}
	ep := os.NewFile(uintptr(bell), "epoll")
	raw, err := ep.SyscallConn()
	if err == nil {
		err = ep.SetReadDeadline(time.Time{}) // fails where the poller cannot wait on it
	}
	if err != nil {
		ep.Close()
		syscall.Close(epfd)
		syscall.Close(int(evfd))
		return nil, err
	}
	l := &loop{c: c, epfd: epfd, ep: ep, raw: raw, bell: bell, armed: true, evfd: int(evfd), epoch: time.Now(), scratch: make([]byte, 64<<10)}
	l.r = *bufio.NewReaderSize(nil, 4096) // as a probe's own reader
	mk := c.newRing
	if mk == nil {
		mk = newURing
	}
	if l.ring, err = mk(ringEntries); err != nil {
		// Refused by a sysctl (kernel.io_uring_disabled), a seccomp
		// filter or an old kernel.
		c.logger.Info("probes on kept connections make a system call per read and write: no io_uring", "error", err)
	} else {
		l.slots = make([]byte, ringEntries*ringSlot)
	}
	return l, nil
}

// send queues m and wakes run if the queue was empty. It reports false
// when the loop has stopped.
func (l *loop) send(m loopMsg, wake bool) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	first := len(l.msgs) == 0
	l.msgs = append(l.msgs, m)
	l.mu.Unlock()
	if first && wake {
		l.wake()
	}
	return true
}

func (l *loop) wake() {
	one := uint64(1)
	syscall.Write(l.evfd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// submit queues g's probe; kick wakes the loop for it. The scheduler
// submits a batch and kicks once.
func (l *loop) submit(g *group) { l.send(loopMsg{op: msgStart, g: g}, false) }

func (l *loop) kick() {
	l.mu.Lock()
	pending := len(l.msgs) > 0
	l.mu.Unlock()
	if pending {
		l.wake()
	}
}

// forget closes g's connection, if the loop holds one: g is gone.
func (l *loop) forget(g *group) { l.send(loopMsg{op: msgForget, g: g}, true) }

// adopt gives lc to the loop, which from then on runs g's probes (see
// group.looped); false when the loop has stopped: g's probes stay on
// goroutines, and lc's socket is the caller's to close.
func (l *loop) adopt(g *group, lc *loopConn) bool {
	g.looped.Store(true)
	if !l.send(loopMsg{op: msgAdopt, g: g, lc: lc}, true) {
		g.looped.Store(false)
		return false
	}
	return true
}

// stop makes run close every connection and return.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.wake()
}

// run is the loop's goroutine.
func (l *loop) run() {
	defer l.closeAll()
	var deadline int64 // the read deadline set on ep; 0: none
	for {
		if len(l.heap) == 0 && deadline != 0 {
			deadline = 0
			l.ep.SetReadDeadline(time.Time{})
		} else if len(l.heap) > 0 && l.heap[0].deadline != deadline {
			deadline = l.heap[0].deadline
			l.ep.SetReadDeadline(l.epoch.Add(time.Duration(deadline)))
		}
		n := 0
		if l.next < len(l.due) {
			// Probes wait to start: harvest what is ready, and go on.
			k, _ := rawEpollWait(l.epfd, l.events[:])
			n = max(k, 0)
		} else {
			// Harvest what is ready, and when nothing is, wait in the
			// runtime's poller until something is or the first
			// deadline passes.
			l.raw.Read(func(uintptr) bool {
				k, err := l.wait()
				n = max(k, 0)
				return err == nil && k > 0
			})
		}
		l.wakes.Add(1)
		now := time.Now()
		for _, ev := range l.events[:n] {
			if ev.Fd < 0 {
				var b [8]byte
				rawRead(l.evfd, b[:])
				continue
			}
			if lc := l.conns[ev.Fd]; lc != nil {
				l.event(lc, ev.Events, now)
			}
		}
		l.flush(now)
		l.mu.Lock()
		l.batch, l.msgs = l.msgs, l.batch[:0]
		stopped := l.stopped
		l.mu.Unlock()
		fresh := len(l.due)
		for i, m := range l.batch {
			if m.op != msgStart {
				l.flush(now) // before a connection may close
			}
			switch {
			case m.op == msgAdopt && (stopped || m.g.ctx.Err() != nil):
				m.lc.closeFD()
			case m.op == msgAdopt:
				l.hold(m.g, m.lc)
			case m.op == msgForget:
				if m.g.lc != nil {
					l.close(m.g.lc)
				}
			case !stopped:
				l.due = append(l.due, m.g)
			}
			l.batch[i] = loopMsg{}
		}
		if stopped {
			l.flush(now)
			return
		}
		l.sortDue(fresh)
		l.startDue(now)
		l.flush(now)
		if n < len(l.events) {
			// Every answer that came is read: what is still out now
			// is late. (A full harvest may have left answers ready.)
			l.expire(now)
		}
	}
}

func (l *loop) now(t time.Time) int64 { return int64(t.Sub(l.epoch)) }

// wait harvests the events that are ready, and when none is, arms bell so
// that the next one wakes run through the runtime's poller. Once woken,
// run disarms it: reading bell's event makes the one-shot registration
// silent until it is armed again.
func (l *loop) wait() (int, error) {
	if l.armed {
		var ev [1]syscall.EpollEvent
		rawEpollWait(l.bell, ev[:])
		l.armed = false
	}
	if k, err := rawEpollWait(l.epfd, l.events[:]); err != nil || k > 0 {
		return k, err
	}
	// An event that comes between the harvest and the arming rings at
	// once: arming polls epfd.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT}
	if err := rawEpollCtl(l.bell, syscall.EPOLL_CTL_MOD, l.epfd, &ev); err != nil {
		return -1, err
	}
	l.armed = true
	return 0, nil
}

// roundConnects bounds the connects of tcp checks that the loop starts
// between two harvests. A connect costs this node tens of microseconds
// (on loopback, the kernel's work for both ends of the handshake), and
// the answers that came meanwhile wait for the next harvest: 32 connects
// keep that wait near a millisecond, well within any probe's timeout.
// When more are due than the loop can make, they start late, in the
// order they fell due, each with its whole timeout from its start, as
// probes waiting for a goroutine do (see maxOwn): a node that cannot
// keep up probes less often, rather than failing endpoints that answer.
// Without the bound, 10,000 tcp checks on a busy node started thousands
// of connects in a row, judged their own answers late, and took every
// endpoint down.
const roundConnects = 32

// startDue starts the probes that fell due, in order, until roundConnects
// connects were made.
func (l *loop) startDue(now time.Time) {
	connects := 0
	for l.next < len(l.due) && connects < roundConnects {
		g := l.due[l.next]
		l.due[l.next] = nil
		l.next++
		if g.lc != nil && g.lc.connect {
			connects++
		}
		l.start(g, now)
	}
	if l.next == len(l.due) {
		l.due, l.next = l.due[:0], 0
	}
}

// sortDue puts the groups that fell due from due[from] on in the order of
// their sockets' descriptors. Why: the kernel's structures of a socket
// (its file, socket and TCP state) are allocated roughly in the order the
// sockets were made, and the descriptors too, so a batch of probes in
// descriptor order walks the kernel's memory in order, where the order
// the probes fell due (random: each one's time is jittered) visits a
// page per send. On a virtual machine, where a miss in the translation
// buffer costs most, the sends of a batch in random order cost this node
// about twice as much system time as in order (TestProbeScale against
// TestProbeFloor, whose batches walk the descriptors in order). Sorting
// touches each group and connection once, which start does next anyway.
//
// The connects of tcp checks, which have no socket between probes, come
// after the sends, in the order of their connections' tokens: a round of
// connects (see roundConnects) never holds up the batch's sends, which
// cost a fraction of a connect each; a group the loop does not hold comes
// last.
func (l *loop) sortDue(from int) {
	fresh := l.due[from:]
	if len(fresh) < 2 {
		return
	}
	keys := l.keys[:0]
	for _, g := range fresh {
		k := int64(math.MaxInt64)
		switch lc := g.lc; {
		case lc == nil:
		case lc.connect:
			k = 1<<32 + int64(lc.token)
		default:
			k = int64(lc.fd)
		}
		keys = append(keys, dueKey{key: k, g: g})
	}
	slices.SortFunc(keys, func(a, b dueKey) int { return cmp.Compare(a.key, b.key) })
	for i, k := range keys {
		fresh[i] = k.g
	}
	clear(keys)
	l.keys = keys[:0]
}

// dueKey is a group that fell due and what sortDue sorts it by.
type dueKey struct {
	key int64
	g   *group
}

// hold registers lc, g's new connection.
func (l *loop) hold(g *group, lc *loopConn) {
	if old := g.lc; old != nil {
		l.close(old)
	}
	if n := len(l.free); n > 0 {
		lc.token, l.free = l.free[n-1], l.free[:n-1]
	} else {
		lc.token = int32(len(l.conns))
		l.conns = append(l.conns, nil)
	}
	if lc.fd >= 0 { // a tcp check's socket is its probe's (see dial)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: lc.token}
		if err := rawEpollAdd(l.epfd, lc.fd, &ev); err != nil {
			lc.closeFD()
			l.free = append(l.free, lc.token)
			g.looped.Store(false)
			return
		}
	}
	lc.g, lc.hidx = g, -1
	l.conns[lc.token] = lc
	g.lc = lc
}

// close closes lc and gives its group back to probes on their own
// goroutines.
func (l *loop) close(lc *loopConn) {
	if lc.busy() {
		l.heap = heapRemove(l.heap, lc.hidx)
		lc.hedged = false
	}
	lc.closeFD()
	l.conns[lc.token] = nil
	l.free = append(l.free, lc.token)
	lc.g.lc = nil
	lc.g.looped.Store(false)
}

// start writes g's request, or hands the probe to a goroutine of its own
// when the connection is not to be used again.
func (l *loop) start(g *group, now time.Time) {
	if g.stopped() {
		return
	}
	lc := g.lc
	// A connection due for retirement is kept a little longer while
	// probes wait to make new ones.
	if lc == nil || lc.gc != g.cfg.Load() || lc.peer || lc.owed ||
		(l.now(now) >= lc.retire && !l.c.own.busy.Load()) {
		if lc != nil {
			l.close(lc)
		}
		g.looped.Store(false)
		l.c.startOwn(g)
		return
	}
	// The probe sends its request on a kept connection: one round trip
	// of path allowance; a tcp check's connect has its own.
	timeout, interval := g.timing(lc.connect)
	lc.start, lc.timeout, lc.interval = now, timeout, interval
	lc.end = l.now(now) + int64(timeout)
	// Whether it gets a hedge is known at half the timeout: only a
	// probe unanswered then looks at its members' states.
	lc.deadline, lc.hedgeDue, lc.hedged = l.now(now)+int64(timeout/2), true, false
	l.heap = heapPush(l.heap, lc)
	if lc.connect {
		l.dial(lc, now)
		return
	}
	l.do(ringOp{lc: lc, op: uringOpSend}, now)
}

// dial starts lc's connect: the socket says it is writable, or has
// failed, when the connect is done (see event).
func (l *loop) dial(lc *loopConn, now time.Time) {
	fd, err := rawConnect(lc.req)
	if err != nil {
		l.connected(lc, now, err)
		return
	}
	lc.fd = fd
	ev := syscall.EpollEvent{Events: syscall.EPOLLOUT | epollET, Fd: lc.token}
	if err := rawEpollAdd(l.epfd, fd, &ev); err != nil {
		l.connected(lc, now, os.NewSyscallError("epoll_ctl", err))
	}
}

// connected finishes lc's connect probe with err (nil: the endpoint
// accepted the connection) and closes its socket, with a reset.
func (l *loop) connected(lc *loopConn, now time.Time, err error) {
	if lc.busy() {
		l.heap = heapRemove(l.heap, lc.hidx)
	}
	lc.closeFD()
	var tr probeTrace
	if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		// The connect's round trip, as dial measures it.
		tr.connect, tr.connected = now.Sub(lc.start), true
	}
	l.finish(lc, lc.g, lc.gc, probeResult{err: err, start: lc.start, end: now}, &tr)
}

// sent handles the write of lc's request, k bytes or err: a failed write
// fails the probe (see stale for a connection the endpoint closed).
func (l *loop) sent(lc *loopConn, k int, err error, now time.Time) {
	switch {
	case err != nil && closedByPeer(err):
		l.stale(lc)
	case err != nil:
		l.done(lc, now, shortError(os.NewSyscallError("write", err)), false)
	case k < len(lc.req):
		l.done(lc, now, io.ErrShortWrite, false)
	}
}

// do makes op: it queues it on the ring, making what is queued first
// when the ring is full, or, without a ring, makes it at once (plain).
func (l *loop) do(op ringOp, now time.Time) {
	if l.ring != nil && l.ring.room() == 0 {
		l.flush(now)
	}
	if l.ring == nil {
		l.plain(op, now)
		return
	}
	i := len(l.pend)
	buf := op.lc.req
	if op.op == uringOpRecv {
		buf = l.slot(i)
	}
	l.ring.queue(op.op, op.lc.fd, buf, uint64(i))
	l.pend = append(l.pend, op)
}

// plain makes op with a system call of its own.
func (l *loop) plain(op ringOp, now time.Time) {
	if op.op == uringOpSend {
		k, err := retryEINTR(func() (int, error) { return rawWrite(op.lc.fd, op.lc.req) })
		l.sent(op.lc, k, err, now)
		return
	}
	l.readFrom(op.lc, op.events, now)
}

// slot is the buffer of the read pend[i].
func (l *loop) slot(i int) []byte { return l.slots[i*ringSlot : (i+1)*ringSlot] }

// flush makes the operations queued on the ring, and handles each one's
// result as the plain system call's. Should the ring fail, the loop goes
// on without it: every operation whose result it did not report is made
// again with a plain call. A request that the ring did send goes twice,
// and the endpoint's second answer, unasked, makes the loop let that
// connection go (see loopConn.peer); an answer that the ring did read is
// lost, and the probe times out.
func (l *loop) flush(now time.Time) {
	if len(l.pend) == 0 {
		return
	}
	_, err := l.ring.submit(func(tag uint64, res int32) {
		l.ringOps.Add(1) // before the probe it finishes counts as handled
		op := &l.pend[tag]
		n, err := int(res), error(nil)
		if res < 0 {
			n, err = -1, syscall.Errno(-res)
		}
		l.completed(op, int(tag), n, err, now)
		op.lc = nil
	})
	if err != nil {
		l.c.logger.Warn("io_uring failed: probes on kept connections go on with a system call per read and write", "error", err)
		l.ring.close()
		l.ring = nil
		for _, op := range l.pend {
			if op.lc != nil {
				l.plain(op, now)
			}
		}
	}
	clear(l.pend)
	l.pend = l.pend[:0]
}

// completed handles the result of op, pend[i], on the ring: n bytes or
// err, as plain's system call would have returned them.
func (l *loop) completed(op *ringOp, i, n int, err error, now time.Time) {
	if op.op == uringOpSend {
		l.sent(op.lc, n, err, now)
		return
	}
	if l.took(op.lc, l.slot(i), n, err, op.events, now) {
		l.readFrom(op.lc, op.events, now)
	}
}

// stale lets go of lc, which the endpoint closed before any byte of an
// answer. When that answer was a probe's, it was closed while idle: the
// probe is made again on a new connection, on a goroutine, within the
// same deadline, as NewHTTPProbe does.
func (l *loop) stale(lc *loopConn) {
	if lc.owed {
		l.close(lc)
		return
	}
	g, start, timeout, interval, hedged := lc.g, lc.start, lc.timeout, lc.interval, lc.hedged
	l.close(lc)
	l.c.wg.Go(func() { l.c.probeUntil(g, start, timeout, interval, hedged) })
}

// event handles what epoll said about lc.
func (l *loop) event(lc *loopConn, events uint32, now time.Time) {
	if lc.connect {
		if lc.busy() && lc.fd >= 0 {
			l.connected(lc, now, connectError(lc.fd))
		}
		return
	}
	if !lc.busy() && !lc.owed {
		lc.peer = true
		return
	}
	l.do(ringOp{lc: lc, op: uringOpRecv, events: events}, now)
}

// readFrom reads what came on lc until the socket has no more.
func (l *loop) readFrom(lc *loopConn, events uint32, now time.Time) {
	for {
		n, err := retryEINTR(func() (int, error) { return rawRead(lc.fd, l.scratch) })
		if !l.took(lc, l.scratch, n, err, events, now) {
			return
		}
	}
}

// took handles one read on lc into buf, of n bytes or err, and reports
// whether more may wait to be read: a read that filled buf. Otherwise the
// answer so far is judged, unless nothing came.
func (l *loop) took(lc *loopConn, buf []byte, n int, err error, events uint32, now time.Time) bool {
	switch {
	case err == syscall.EAGAIN:
	case err != nil:
		if len(lc.got) == 0 && closedByPeer(err) {
			l.stale(lc)
		} else {
			l.done(lc, now, shortError(os.NewSyscallError("read", err)), false)
		}
		return false
	case n == 0:
		lc.eof = true
	case n < len(buf) && len(lc.got) == 0:
		l.judge(lc, buf[:n], events, now)
		return false
	default:
		lc.got = append(lc.got, buf[:n]...)
		if len(lc.got) > maxLoopResponse {
			l.done(lc, now, errors.New("response too large"), false)
			return false
		}
		if n == len(buf) {
			return true
		}
	}
	switch {
	case len(lc.got) == 0 && lc.eof:
		l.stale(lc)
	case len(lc.got) > 0:
		l.judge(lc, lc.got, events, now)
	}
	return false
}

// judge judges the response so far, data, unless it is not whole yet.
func (l *loop) judge(lc *loopConn, data []byte, events uint32, now time.Time) {
	l.src = loopSource{b: data, eof: lc.eof}
	l.r.Reset(&l.src)
	keep, err := lc.p.judge(&l.r, true, shortError)
	if l.src.starved {
		// More is to come: wait for it.
		if len(lc.got) == 0 {
			lc.got = append(lc.got, data...)
		}
		return
	}
	keep = keep && l.r.Buffered() == 0 && len(l.src.b) == 0 && !lc.eof && events&syscall.EPOLLRDHUP == 0
	l.r.Reset(nil)
	l.done(lc, now, err, keep)
}

// done finishes lc's probe with err and lets go of the connection unless
// keep.
func (l *loop) done(lc *loopConn, now time.Time, err error, keep bool) {
	if lc.busy() {
		l.heap = heapRemove(l.heap, lc.hidx)
	}
	lc.got, lc.eof = nil, false
	if lc.owed {
		// A late answer: the probe has failed already; the answer
		// decides only whether the connection can be used again.
		lc.owed = false
		if !keep || err != nil {
			l.close(lc)
		}
		return
	}
	g, gc := lc.g, lc.gc
	var tr probeTrace
	if err == nil && g.key.remote && lc.sampleRTT(&g.path) {
		// A completed exchange: the kernel's estimate of the path now
		// includes its round trip.
		tr.srtt, tr.rttvar, tr.sampled = kernelRTTFD(lc.fd)
	}
	if !keep || err != nil {
		l.close(lc)
	}
	l.finish(lc, g, gc, probeResult{err: err, start: lc.start, end: now}, &tr)
}

// finish hands the result of lc's probe of g, made with gc, on: to the
// probe's hedge when it has one, which finishes both, and otherwise to
// the state machines (Checker.finish), with what it measured of the
// path (tr).
func (l *loop) finish(lc *loopConn, g *group, gc *groupConfig, res probeResult, tr *probeTrace) {
	l.handled.Add(1)
	if lc.hedged {
		lc.hedged = false
		g.hedge.deliver(res, tr)
		return
	}
	if tr != nil {
		tr.feed(&g.path)
	}
	results := [1]probeResult{res}
	l.c.finish(g, gc, lc.start, lc.interval, results[:])
}

// hedge starts the hedge of lc's probe, which has had no answer for half
// its timeout while a member of its group is Up: a probe on a new
// connection, on a goroutine of its own, as the hedge of a probe on a
// goroutine is (see the hedge type). That goroutine then waits for the
// loop probe's result, and hands both to the state machines in the order
// they came (Checker.finishHedged). Only a probe that is this late costs
// a goroutine.
func (l *loop) hedge(lc *loopConn) {
	if !l.c.tryOwn() {
		return // no slot free: the probe goes on alone (see tryOwn)
	}
	g, gc, start, interval := lc.g, lc.gc, lc.start, lc.interval
	lc.hedged = true
	h := &g.hedge
	h.prepare(g, gc.probe)
	select {
	case <-h.first: // left by a hedge whose group stopped waiting
	default:
	}
	l.c.wg.Go(func() { l.c.finishHedged(g, gc, start, interval) })
}

// expire times out the probes whose deadline passed. A response that
// arrived meanwhile was read before: run handles events first.
//
// The connection of a probe that timed out is kept until the group's
// next probe, and used again by it if the late answer came whole
// meanwhile: an endpoint, or a node, that is slow for a moment does not
// cost a new connection per late probe, which on a busy node would add
// to the load that made it late. One that never answers has its
// connection closed by the next probe, which makes a new one, as it
// would have after a close now.
func (l *loop) expire(now time.Time) {
	t := l.now(now)
	for len(l.heap) > 0 && l.heap[0].deadline <= t {
		lc := l.heap[0]
		if lc.hedgeDue {
			// Half the timeout: the hedge starts, and the probe waits
			// on until its own timeout.
			lc.hedgeDue = false
			lc.deadline = lc.end
			heapDown(l.heap, lc.hidx)
			if hedgeable(lc.g.cfg.Load().members) {
				l.hedge(lc)
			}
			continue
		}
		if lc.connect {
			l.connected(lc, now, &timeoutError{after: lc.timeout})
			continue
		}
		l.heap = heapRemove(l.heap, lc.hidx)
		lc.owed = true
		l.finish(lc, lc.g, lc.gc, probeResult{err: &timeoutError{after: lc.timeout}, start: lc.start, end: now}, nil)
	}
}

// closeAll closes every connection and the loop's own descriptors.
func (l *loop) closeAll() {
	for _, lc := range l.conns {
		if lc != nil {
			lc.closeFD()
			lc.g.lc = nil
		}
	}
	l.conns, l.heap = nil, nil
	if l.ring != nil {
		l.ring.close()
	}
	l.ep.Close()
	syscall.Close(l.epfd)
	syscall.Close(l.evfd)
}

// youngPath and rttEvery say when the loop reads the kernel's round trip
// (TCP_INFO) after an exchange with a remote endpoint: after each one
// while the endpoint's estimate has fewer than youngPath measurements,
// and then after every rttEvery-th exchange on the connection.
//
// Why not after every exchange: it is a system call per probe, about a
// tenth of what a probe on a kept connection costs this node, and the
// kernel's estimate moves slowly at one exchange per interval (it gives
// each new round trip a weight of 1/8), so reading it every 4th exchange
// (2s at the default interval) follows the path nearly as closely. A
// new estimate, which may come from a slow connect (a node starting
// among many others), is corrected at once.
const (
	youngPath = 8
	rttEvery  = 4
)

// sampleRTT counts an exchange completed on lc and says whether the
// kernel's round trip is to be read after it, for the estimate path.
func (lc *loopConn) sampleRTT(path *rtt) bool {
	lc.exchanges++
	return path.n < youngPath || lc.exchanges%rttEvery == 0
}

// rawRead, rawWrite, rawEpollWait, rawEpollAdd and rawClose are the
// loop's system calls on its non-blocking sockets (which it closes
// without lingering) and its epoll instance (which it polls without
// waiting): made raw, without telling the Go scheduler that this thread
// enters a system call, since none of them blocks.
//
// Why: a system call that the scheduler knows of may lose its P (the
// runtime's processor) when it lasts more than 20µs, which a write on
// loopback can, since it does the receiving end's work too; the loop
// then waits for a P behind every other runnable goroutine when the call
// returns. With hundreds of probes dialling on goroutines of their own
// (after a burst of timeouts), the loop got to run a few times a second,
// its probes timed out in turn, and each timeout made another probe dial:
// the Checker never recovered. A raw call keeps the loop's P, and saves
// the scheduler's bookkeeping twice per probe.
func rawRead(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, b) }

func rawWrite(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b) }

// rawIO is read(2) or write(2) (trap) of b on fd.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

func rawEpollAdd(epfd, fd int, ev *syscall.EpollEvent) error {
	return rawEpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, ev)
}

func rawEpollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func rawClose(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

func rawEpollWait(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// closeFD closes lc's socket, if it has one: a tcp check's connection has
// none between probes (see dial).
func (lc *loopConn) closeFD() {
	if lc.fd >= 0 {
		rawClose(lc.fd)
		lc.fd = -1
	}
}

// busy says that a probe is in flight on lc: it is in the loop's heap.
func (lc *loopConn) busy() bool { return lc.hidx >= 0 }

func (lc *loopConn) heapKey() int64     { return lc.deadline }
func (lc *loopConn) setHeapIndex(i int) { lc.hidx = i }

// loopSource is what the loop's response reader reads: the bytes that
// came back so far. At their end it says io.EOF when the endpoint closed
// the connection, and otherwise notes that the response is not whole yet.
type loopSource struct {
	b       []byte
	eof     bool
	starved bool
}

var errMore = errors.New("response not whole yet")

func (s *loopSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		if s.eof {
			return 0, io.EOF
		}
		s.starved = true
		return 0, errMore
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// handOver gives g's kept connection, which p just used, to the loop:
// the socket is duplicated out of the Go runtime's poller, so that the
// loop alone owns it, and the connection closed.
func (c *Checker) handOver(g *group, gc *groupConfig, p *httpProbe) {
	l := c.startLoop()
	if l == nil {
		return
	}
	kc := g.conns.takeIdle(p)
	if kc == nil {
		return
	}
	fd := -1
	kc.raw.Control(func(s uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if errno == 0 {
			fd = int(r)
		}
	})
	kc.conn.Close()
	if fd < 0 {
		return
	}
	lc := &loopConn{fd: fd, gc: gc, p: p, req: p.request(nil, g.key.addr, true), retire: l.now(kc.retire), hidx: -1}
	if !l.adopt(g, lc) {
		lc.closeFD()
	}
}

// handOverConnect gives g's tcp check, gc, to the loop, whose probes
// then connect without a goroutine each. Where the loop cannot connect
// to the endpoint's address, the probes stay on goroutines.
func (c *Checker) handOverConnect(g *group, gc *groupConfig) {
	if !loopConnects {
		return
	}
	sa, ok := connectAddr(g.key.addr)
	if !ok {
		return
	}
	l := c.startLoop()
	if l == nil {
		return
	}
	l.adopt(g, &loopConn{fd: -1, gc: gc, connect: true, req: sa, retire: math.MaxInt64, hidx: -1})
}

// connectAddr is addr as connect(2) takes it: an IPv4 address, also one
// mapped into IPv6, as AF_INET, as Go's net package dials it. IPv6
// addresses with a zone are left to the net package, which knows the
// zone's interface.
func connectAddr(addr netip.AddrPort) ([]byte, bool) {
	ip := addr.Addr().Unmap()
	switch {
	case ip.Is4():
		sa := syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ip.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		return unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unsafe.Sizeof(sa)), true
	case ip.Is6() && ip.Zone() == "":
		sa := syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: ip.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		return unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unsafe.Sizeof(sa)), true
	}
	return nil, false
}

// startLoop returns the Checker's loop, started with the first check
// handed over (a Checker with no plain HTTP or tcp check has none), or nil when
// the Checker is stopping or no loop can be made.
func (c *Checker) startLoop() *loop {
	if l := c.loop.Load(); l != nil {
		return l
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.loop.Load(); l != nil || c.stopped || c.noLoop {
		return l
	}
	l, err := newLoop(c)
	if err != nil {
		c.noLoop = true
		c.logger.Warn("no event loop for probes: each runs on a goroutine of its own", "error", err)
		return nil
	}
	c.loop.Store(l)
	c.wg.Go(l.run)
	return l
}
