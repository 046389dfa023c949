package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// UDPServer serves a [Resolver] over UDP sockets: one long-lived reader
// goroutine per socket, each with its own buffers and metrics shard, no
// goroutine per packet; on Linux each reads and writes batches of packets
// (recvmmsg, sendmmsg). A query the fast path recognises is answered from
// a prepacked reply (see fast.go); anything else is unpacked and answered
// by the general path exactly as miekg's dns.Server with [Accept] would:
// packets shorter than a header and responses are dropped, a packet that
// does not unpack gets FORMERR, the rest goes to ServeDNS.
//
// Bind the sockets with [ListenUDP] to spread queries over several of
// them. Serve and Shutdown may be called from different goroutines.
type UDPServer struct {
	r        *Resolver
	conns    []*net.UDPConn
	readSize int
	coalesce time.Duration // see SetCoalesce
	// pause waits d between two reads; a raw nanosleep on Linux (see
	// pauseThread), replaced by tests.
	pause func(d time.Duration)

	shutdown atomic.Bool
	wg       sync.WaitGroup
	done     chan struct{}

	// mu guards serving and stopped: Shutdown before Serve only closes
	// the sockets.
	mu      sync.Mutex
	serving bool
	stopped bool
}

// NewUDPServer returns a server for conns. readSize is the read buffer,
// the largest query accepted (longer ones are cut, as miekg's UDPSize
// does); 0 means 512.
func (r *Resolver) NewUDPServer(conns []*net.UDPConn, readSize int) *UDPServer {
	if readSize <= 0 {
		readSize = dns.MinMsgSize
	}
	return &UDPServer{r: r, conns: conns, readSize: readSize, done: make(chan struct{}), pause: pauseThread}
}

// SetCoalesce sets how long a reader pauses before its next read when a
// read returned a few queries but not many (from 2 to pauseBelow - 1):
// queries then arrive faster than one at a time, and the pause lets more
// of them gather on the socket, so that the next read and the send of its
// replies carry more queries per system call. Under a steady load of
// tens of thousands of queries a second this is most of the server's CPU
// per query (the system calls' fixed cost), for a wait of about d plus
// the kernel's timer slack (50 µs) for the queries that arrive meanwhile.
// A lone query is never held (a read of one query does not pause), nor
// is a full batch. 0, the default, turns it off. Call it before Serve.
func (s *UDPServer) SetCoalesce(d time.Duration) { s.coalesce = max(d, 0) }

// pauseBelow is the size of a read that carries enough queries per
// system call not to pause after it: half of Linux's batch of 32.
const pauseBelow = 16

// pauseFor is how long a reader pauses after a read of n queries (see
// SetCoalesce).
func (s *UDPServer) pauseFor(n int) time.Duration {
	if n < 2 || n >= pauseBelow {
		return 0
	}
	return s.coalesce
}

// Addr returns the address the sockets are bound to.
func (s *UDPServer) Addr() net.Addr { return s.conns[0].LocalAddr() }

// Serve reads and answers queries until Shutdown. started, when not nil,
// is called once every reader runs. After Shutdown, or a first Serve, it
// returns nil at once. It returns nil after Shutdown, or the
// first read error otherwise (the other readers are stopped first).
func (s *UDPServer) Serve(started func()) error {
	s.mu.Lock()
	if s.stopped || s.serving {
		s.mu.Unlock()
		return nil
	}
	s.serving = true
	s.mu.Unlock()
	defer close(s.done)
	errs := make(chan error, len(s.conns))
	for i, c := range s.conns {
		rd, err := s.newReader(c, 1+i%(s.r.m.shards-1))
		if err != nil {
			s.stop()
			s.wg.Wait()
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			errs <- rd.run()
		}()
	}
	if started != nil {
		started()
	}
	var first error
	for range s.conns {
		if err := <-errs; err != nil && first == nil {
			first = err
			s.stop() // one socket failed: stop the others too
		}
	}
	s.wg.Wait()
	for _, c := range s.conns {
		c.Close()
	}
	if s.shutdown.Load() && first != nil && s.stoppedByUs(first) {
		return nil
	}
	return first
}

func (s *UDPServer) stoppedByUs(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed)
}

// stop makes every reader return after the packet it is answering.
func (s *UDPServer) stop() {
	s.shutdown.Store(true)
	past := time.Unix(1, 0)
	for _, c := range s.conns {
		_ = c.SetReadDeadline(past)
	}
}

// Shutdown stops reading, lets the readers finish the query in hand,
// closes the sockets and returns once Serve has returned, or with ctx's
// error when ctx ends first.
func (s *UDPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	serving := s.serving
	s.stopped = true
	s.mu.Unlock()
	s.stop()
	if !serving {
		for _, c := range s.conns {
			c.Close()
		}
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reader is one socket's loop and its reused buffers. Only its goroutine
// touches it.
//
// It reads queries in batches: one system call returns every query
// waiting on the socket (up to batchSize), the batch is looked at ahead
// (ahead.go), each query is answered in turn (handle), and one system
// call sends all the replies. Under load this divides the system calls
// per query by the batch size; with one query waiting the batch is that
// one query, answered at once.
type reader struct {
	s     *UDPServer
	r     *Resolver
	conn  *net.UDPConn
	shard int
	io    *batch
	name  [256]byte
	pkts  [aheadMax][]byte
	ahead ahead
}

func (s *UDPServer) newReader(c *net.UDPConn, shard int) (*reader, error) {
	b, err := newBatch(c, s.readSize, int(s.r.udpSize)+64)
	if err != nil {
		return nil, err
	}
	return &reader{s: s, r: s.r, conn: c, shard: shard, io: b, ahead: ahead{from: aheadFrom}}, nil
}

func (rd *reader) run() error {
	for {
		n, err := rd.io.recv()
		if err != nil {
			if rd.s.shutdown.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		start := time.Now()
		answered := 0
		if st, m := rd.r.cur.Load(), min(n, aheadMax); rd.ahead.wants(st, m) {
			for i := range m {
				rd.pkts[i] = rd.io.data(i)
			}
			rd.ahead.prepare(st, rd.pkts[:m], rd.shard)
		}
		for i := range n {
			pkt, from := rd.io.packet(i)
			if rd.handle(i, pkt, from) {
				answered++
			}
		}
		rd.ahead.done()
		rd.io.flush()
		// Every reply of the batch left with the flush: the batch's time
		// is each query's time in the server (the two clock reads are per
		// batch, not per query).
		d := &rd.r.m.query.durations[rd.shard]
		d.observeN(int64(time.Since(start)), answered)
		d.reads.Add(1)
		if p := rd.s.pauseFor(n); p > 0 && !rd.s.shutdown.Load() {
			d.pauses.Add(1)
			rd.s.pause(p)
		}
	}
}

// handle answers packet i of the batch, pkt from client from, by queuing
// its reply; it reports whether the packet was answered (or dropped). It
// never panics: a panic while answering is recovered, counted and
// answered SERVFAIL, as in ServeDNS.
func (rd *reader) handle(i int, pkt []byte, from netip.AddrPort) bool {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		return false // too short to answer; or a response (Accept drops those)
	}
	st := rd.r.cur.Load()
	if hit, ok := rd.fast(st, pkt, rd.io.buffer(), i, from); ok {
		if b := rd.r.rrl.limit(rd.shard, from.Addr(), hit.reply); b != nil {
			rd.io.queue(i, b)
		}
		hit.count(rd.shard)
		return true
	}
	w := &udpWriter{rd: rd, i: i, from: from}
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		// What miekg's server does with a request that does not unpack.
		req.SetRcodeFormatError(req)
		req.Zero = false
		req.Ns, req.Answer, req.Extra = nil, nil, nil
		_ = w.WriteMsg(req)
		return true
	}
	rd.r.serve(w, req, rd.shard, time.Time{})
	return true
}

// fast runs the fast path into out, with a recover of its own: it runs
// outside ServeDNS's. A panic is answered SERVFAIL as packet i.
func (rd *reader) fast(st *state, pkt, out []byte, i int, from netip.AddrPort) (hit fastHit, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			req := new(dns.Msg)
			if req.Unpack(pkt) != nil {
				req = nil
			}
			rd.r.recovered(&udpWriter{rd: rd, i: i, from: from}, req, v)
			hit, ok = fastHit{}, false
		}
	}()
	if rd.ahead.prepared(st, i) {
		return rd.ahead.answer(i, pkt, out)
	}
	return fast(st, pkt, out, rd.name[:])
}

// udpWriter is the dns.ResponseWriter of packet i of a batch, a query on
// the general path: what it writes is queued with the batch's replies.
type udpWriter struct {
	rd   *reader
	i    int
	from netip.AddrPort
}

var _ dns.ResponseWriter = (*udpWriter)(nil)

func (w *udpWriter) LocalAddr() net.Addr  { return w.rd.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.from) }

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	// PackBuffer packs in place only into a buffer long enough: it
	// checks the length, not the capacity.
	buf := w.rd.io.buffer()
	b, err := m.PackBuffer(buf[:cap(buf)])
	if err != nil {
		return err
	}
	w.rd.io.queue(w.i, b)
	return nil
}

func (w *udpWriter) Write(b []byte) (int, error) {
	if !w.from.IsValid() {
		return 0, errors.New("no client address")
	}
	if b = w.rd.r.rrl.limit(w.rd.shard, w.from.Addr(), b); b == nil {
		return 0, nil
	}
	w.rd.io.queue(w.i, append(w.rd.io.buffer(), b...))
	return len(b), nil
}

func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
