package health

import (
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"
)

// maxConnAge bounds how long an HTTP probe keeps one connection: each is
// retired at a random age between maxConnAge/2 and maxConnAge, so that the
// new-connection path (connect, TLS handshake) is still exercised
// regularly, and so that the connections a Checker opened together at
// start (or after an outage) are not all dialled again in the same
// instant.
//
// Why minutes: every retirement costs a close and a new connection on
// both ends, several times what the exchanges on the connection cost
// meanwhile, and at 10,000 endpoints a retirement every 15-30s was about
// 450 new connections a second, a tenth of the probing's CPU. The new
// connection path is tried far more often than this anyway: by the first
// probe after any failure, and by the hedge of every probe still waiting
// at half its timeout (see hedge). And a kept connection goes whenever
// the endpoint closes it, says "Connection: close", or is reloaded with
// another check. 2.5-5 minutes is about 44 new connections a second for
// 10,000 endpoints.
const maxConnAge = 5 * time.Minute

// connSlot holds the connection a group's HTTP probe keeps from one probe
// to the next. The Checker owns one per group, lends it to the probe
// through the context (probeTrace) and closes it when the group is removed
// or the Checker stops; closing also interrupts the probe in flight, whose
// I/O then fails at once. A group has one probe in flight at a time, so
// the slot is used by one probe at a time; mu orders that probe against
// close.
type connSlot struct {
	// mu guards the fields below.
	mu     sync.Mutex
	idle   *keptConn // kept for the next probe; nil when none
	busy   net.Conn  // the TCP connection of the probe in flight; nil when none
	closed bool
}

// keptConn is a connection an HTTP probe may use again.
type keptConn struct {
	conn net.Conn     // what the probe talks on: tcp, or a TLS client over it
	tcp  *net.TCPConn // the socket under conn
	// owner is the probe that opened it: another probe (a reload changed
	// the group's check) must not inherit its TLS settings.
	owner  *httpProbe
	retire time.Time // when it is closed rather than used again
	// raw is the socket's raw access when conn is tcp itself (no TLS),
	// for rawTrip.
	raw syscall.RawConn
}

func newKeptConn(conn net.Conn, tcp *net.TCPConn, owner *httpProbe, now time.Time) *keptConn {
	age := maxConnAge/2 + rand.N(maxConnAge/2)
	kc := &keptConn{conn: conn, tcp: tcp, owner: owner, retire: now.Add(age)}
	if conn == net.Conn(tcp) {
		kc.raw = rawConn(tcp)
	}
	return kc
}

// take returns the kept connection, marked busy, when owner opened it and
// it is not due for retirement; otherwise it closes it and returns nil.
// ok is false when the slot is closed: the probe must not start.
func (s *connSlot) take(owner *httpProbe, now time.Time) (kc *keptConn, ok bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false
	}
	kc, s.idle = s.idle, nil
	if kc != nil && (kc.owner != owner || !now.Before(kc.retire)) {
		s.mu.Unlock()
		kc.conn.Close()
		return nil, true
	}
	if kc != nil {
		s.busy = kc.tcp
	}
	s.mu.Unlock()
	return kc, true
}

// takeIdle returns the kept connection and leaves the slot empty when
// owner opened it over plain TCP, for the Checker's event loop to take
// over; otherwise nil.
func (s *connSlot) takeIdle(owner *httpProbe) *keptConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	kc := s.idle
	if s.closed || kc == nil || kc.owner != owner || kc.raw == nil {
		return nil
	}
	s.idle = nil
	return kc
}

// kept reports whether the slot holds a connection that the next probe
// may use (one due for retirement at now does not count): that probe
// then needs no connect.
func (s *connSlot) kept(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle != nil && now.Before(s.idle.retire)
}

// use marks tcp, just dialled, as the busy connection. When the slot is
// closed it closes tcp and returns false.
func (s *connSlot) use(tcp *net.TCPConn) bool {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.busy = tcp
	}
	s.mu.Unlock()
	if closed {
		tcp.Close()
	}
	return !closed
}

// put keeps kc for the next probe, or closes it when the slot is closed.
func (s *connSlot) put(kc *keptConn) {
	s.mu.Lock()
	closed := s.closed
	s.busy = nil
	if !closed {
		s.idle = kc
	}
	s.mu.Unlock()
	if closed {
		kc.conn.Close()
	}
}

// drop closes kc, which will not be used again.
func (s *connSlot) drop(kc *keptConn) {
	s.done()
	kc.conn.Close()
}

// done says that the probe no longer uses its busy connection.
func (s *connSlot) done() {
	s.mu.Lock()
	s.busy = nil
	s.mu.Unlock()
}

// close closes the kept connection and the busy one, and every connection
// put back later. It is safe to call more than once.
func (s *connSlot) close() {
	s.mu.Lock()
	idle, busy := s.idle, s.busy
	s.idle, s.busy, s.closed = nil, nil, true
	s.mu.Unlock()
	if idle != nil {
		idle.conn.Close()
	}
	if busy != nil {
		busy.Close()
	}
}
