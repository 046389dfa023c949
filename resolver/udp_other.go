//go:build !linux

package resolver

import (
	"net"
	"net/netip"
	"time"
)

// ListenUDP binds one UDP socket to addr; n is ignored outside Linux,
// where SO_REUSEPORT does not spread load the same way.
func ListenUDP(addr string, n int) ([]*net.UDPConn, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return []*net.UDPConn{pc.(*net.UDPConn)}, nil
}

// batch is one packet at a time outside Linux, with no control messages:
// bind DNS to specific addresses there, or replies on a multi-homed host
// may leave from another address.
type batch struct {
	conn  *net.UDPConn
	buf   []byte
	n     int
	from  netip.AddrPort
	reply []byte
}

func newBatch(c *net.UDPConn, readSize, replySize int) (*batch, error) {
	return &batch{conn: c, buf: make([]byte, readSize), reply: make([]byte, 0, replySize)}, nil
}

func (b *batch) recv() (int, error) {
	n, _, _, from, err := b.conn.ReadMsgUDPAddrPort(b.buf, nil)
	if err != nil {
		return 0, err
	}
	b.n, b.from = n, from
	return 1, nil
}

func (b *batch) packet(i int) ([]byte, netip.AddrPort) { return b.data(i), b.from }

func (b *batch) data(int) []byte { return b.buf[:b.n] }

func (b *batch) buffer() []byte { return b.reply[:0] }

// queue sends reply at once; it keeps reply's buffer for the next one.
func (b *batch) queue(_ int, reply []byte) {
	_, _ = b.conn.WriteToUDPAddrPort(reply, b.from)
	b.reply = reply[:0]
}

func (b *batch) flush() {}

// pauseThread is never needed here: a read returns one query, and reads
// of one query do not pause.
func pauseThread(d time.Duration) { time.Sleep(d) }
