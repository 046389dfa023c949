package resolver

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ListenUDP binds n UDP sockets (at least one) to the same address with
// SO_REUSEPORT, so that the kernel spreads queries over them by client
// address and port. With port 0 the first socket picks the port and the
// others join it. Only sockets of the same user can join a port, and a
// kernel may hand such a port to another of the user's reuse groups: bind
// TCP on the same port afterwards (without SO_REUSEPORT) to make sure the
// port is ours. With n == 1 the socket is bound without SO_REUSEPORT.
//
// Each socket asks for a receive buffer of RecvBuffer bytes, so that a
// burst of queries while the reader is not scheduled waits in the kernel
// instead of being dropped: with the privilege to (root, CAP_NET_ADMIN)
// past the system's net.core.rmem_max, else up to it.
func ListenUDP(addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{}
	lc.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if n > 1 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, RecvBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, RecvBuffer)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
	var conns []*net.UDPConn
	for i := range max(n, 1) {
		if i == 1 {
			addr = conns[0].LocalAddr().String()
		}
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	return conns, nil
}

// RecvBuffer is the receive buffer each UDP socket asks for: 4 MiB, about
// 20,000 queries, or a tenth of a second at the rate one core answers.
const RecvBuffer = 4 << 20

// batchSize is how many packets a reader receives, and how many replies
// it sends, with one system call.
const batchSize = 32

// mmsghdr is struct mmsghdr of <sys/socket.h>: Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// Control message sizes: room for one IPv6 packet-info message, and for
// a second control message the kernel may add.
var (
	pktinfoSpace = unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	oobSpace     = 2 * pktinfoSpace
)

// batch is a reader's packets: those received by the last recv, each with
// its buffer, client address and control messages, and the replies queued
// for the next flush. Only the reader's goroutine uses it.
//
// On a socket bound to a wildcard address (0.0.0.0 or ::) replies leave
// from the address the query came to: the kernel reports the destination
// of each query in an IP_PKTINFO or IPV6_PKTINFO control message, and the
// reply carries it back as its source. Without it a host with several
// addresses may answer from the wrong one.
type batch struct {
	rc      syscall.RawConn
	pktinfo bool

	in     [batchSize]mmsghdr
	inIov  [batchSize]unix.Iovec
	names  [batchSize]unix.RawSockaddrInet6 // client addresses; replies go to them as they are
	bufs   [batchSize][]byte
	oob    []byte // control messages received, oobSpace per packet
	ctl    []byte // the control message of each reply, pktinfoSpace per packet
	ctlLen [batchSize]int
	n      int // packets received

	out     [batchSize]mmsghdr
	outIov  [batchSize]unix.Iovec
	replies [batchSize][]byte // reply buffers, reused
	nout    int               // replies queued
	sent    int               // replies sent by the current flush

	recvFn, sendFn func(fd uintptr) bool
	errno          syscall.Errno
}

func newBatch(c *net.UDPConn, readSize, replySize int) (*batch, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batch{rc: rc}
	b.recvFn, b.sendFn = b.recvmmsg, b.sendmmsg
	if b.pktinfo, err = enablePktinfo(c, rc); err != nil {
		return nil, err
	}
	if b.pktinfo {
		b.oob = make([]byte, batchSize*oobSpace)
		b.ctl = make([]byte, batchSize*pktinfoSpace)
	}
	for i := range batchSize {
		b.bufs[i] = make([]byte, readSize)
		b.replies[i] = make([]byte, 0, replySize)
		b.inIov[i].Base = &b.bufs[i][0]
		b.inIov[i].SetLen(readSize)
		h := &b.in[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
		if b.pktinfo {
			h.Control = &b.oob[i*oobSpace]
			h.SetControllen(oobSpace)
		}
		o := &b.out[i].hdr
		o.Iov = &b.outIov[i]
		o.SetIovlen(1)
	}
	return b, nil
}

// recv waits for packets and receives those waiting, up to batchSize. It
// returns the socket's error: a deadline or a closed socket ends it.
func (b *batch) recv() (int, error) {
	for i := range b.n {
		h := &b.in[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if b.pktinfo {
			h.SetControllen(oobSpace)
		}
	}
	b.n, b.errno = 0, 0
	if err := b.rc.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", b.errno)
	}
	if b.pktinfo {
		for i := range b.n {
			h := &b.in[i].hdr
			b.ctlLen[i] = replyControl(b.oob[i*oobSpace:i*oobSpace+int(h.Controllen)], b.ctl[i*pktinfoSpace:(i+1)*pktinfoSpace])
		}
	}
	return b.n, nil
}

// recvmmsg and sendmmsg make raw system calls: the socket is
// non-blocking, so they never wait, and telling the runtime about them
// (Syscall6) only lets its monitor hand the reader's P to another thread
// whenever a batch takes more than 20 µs in the kernel, which a send of
// 32 replies over loopback does: a profile under dnsperf showed 10% of
// the server's CPU in that monitor and the hand-overs, 1.5% without.

func (b *batch) recvmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), batchSize, 0, 0, 0)
		switch e {
		case 0:
			b.n = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until the socket is readable
		}
		b.errno = e
		return true
	}
}

// packet returns packet i and its client's address.
func (b *batch) packet(i int) ([]byte, netip.AddrPort) {
	return b.data(i), sockaddrAddrPort(&b.names[i])
}

// data returns packet i alone.
func (b *batch) data(i int) []byte { return b.bufs[i][:b.in[i].n] }

// sockaddrAddrPort returns the address of a struct sockaddr_in or
// sockaddr_in6, without the IPv6 scope: the reply goes to the raw address,
// which keeps it.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// buffer returns an empty buffer to build the next reply in, for queue.
func (b *batch) buffer() []byte {
	if b.nout == batchSize {
		b.flush()
	}
	return b.replies[b.nout][:0]
}

// queue queues reply as the answer to packet i. reply must be the last
// buffer returned by buffer, or grown from it, or a buffer nothing else
// holds: the batch keeps it for later replies.
func (b *batch) queue(i int, reply []byte) {
	if len(reply) == 0 {
		return
	}
	if b.nout == batchSize {
		b.flush()
	}
	k := b.nout
	b.replies[k] = reply[:0]
	b.outIov[k].Base = &reply[0]
	b.outIov[k].SetLen(len(reply))
	h := &b.out[k].hdr
	h.Name = b.in[i].hdr.Name
	h.Namelen = b.in[i].hdr.Namelen
	if b.ctlLen[i] > 0 {
		h.Control = &b.ctl[i*pktinfoSpace]
		h.SetControllen(b.ctlLen[i])
	} else {
		h.Control = nil
		h.SetControllen(0)
	}
	b.nout++
}

// flush sends the queued replies. A reply the kernel refuses is dropped
// (the client asks again) and the others still go; nothing is reported:
// there is no one to report to.
func (b *batch) flush() {
	for b.sent = 0; b.sent < b.nout; {
		b.errno = 0
		if b.rc.Write(b.sendFn) != nil {
			break // the socket is closed
		}
		if b.errno != 0 {
			b.sent++ // skip the reply that failed
		}
	}
	b.nout = 0
}

func (b *batch) sendmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.sent])), uintptr(b.nout-b.sent), 0, 0, 0)
		switch e {
		case 0:
			b.sent += int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until the socket is writable
		}
		b.errno = e
		return true
	}
}

// enablePktinfo asks for the destination address of every packet on a
// socket bound to a wildcard address, and reports whether it did.
func enablePktinfo(c *net.UDPConn, rc syscall.RawConn) (bool, error) {
	la, _ := c.LocalAddr().(*net.UDPAddr)
	if la == nil || !la.AddrPort().Addr().IsUnspecified() {
		return false, nil
	}
	v6 := la.AddrPort().Addr().Is6() && !la.AddrPort().Addr().Is4In6()
	var serr error
	err := rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			// IPv4 clients of a dual-stack socket: best effort.
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	if err == nil {
		err = serr
	}
	return err == nil, err
}

// replyControl writes into out the control message to send with the
// reply to a packet that came with the control messages oob, and returns
// its length; 0 when the reply needs none.
func replyControl(oob, out []byte) int {
	b := oob
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(b) {
			return 0
		}
		data := b[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			n := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
			clear(out[:n])
			rh := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
			rh.Level, rh.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
			rh.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
			o := (*unix.Inet4Pktinfo)(unsafe.Pointer(&out[unix.CmsgLen(0)]))
			o.Spec_dst = in.Addr
			return n
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			if netip.AddrFrom16(in.Addr).IsLinkLocalUnicast() {
				return 0 // the kernel needs the interface too: let it choose
			}
			n := unix.CmsgSpace(unix.SizeofInet6Pktinfo)
			clear(out[:n])
			rh := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
			rh.Level, rh.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
			rh.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
			o := (*unix.Inet6Pktinfo)(unsafe.Pointer(&out[unix.CmsgLen(0)]))
			o.Addr = in.Addr
			return n
		}
		b = b[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(b)):]
	}
	return 0
}

// pauseThread sleeps d on this thread, holding its P: a raw nanosleep,
// which the runtime does not see. Telling it (Syscall) would let its
// monitor hand the P to another thread during the pause, which costs more
// than the pause saves (see recvmmsg). Other goroutines of the P wait at
// most d plus the timer slack, or until the runtime's preemption signal
// ends the sleep early (EINTR), which only shortens the pause.
func pauseThread(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_, _, _ = unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
