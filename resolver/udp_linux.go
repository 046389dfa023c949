package resolver

import (
	"context"
	"net"
	"net/netip"
	"syscall"
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
func ListenUDP(addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
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

// sourceAddr makes replies leave from the address the query came to, on
// a socket bound to a wildcard address (0.0.0.0 or ::): the kernel reports
// the destination of each query in an IP_PKTINFO or IPV6_PKTINFO control
// message, and the reply carries it back as its source. Without it a host
// with several addresses may answer from the wrong one. On a socket bound
// to one address both buffers stay nil.
type sourceAddr struct {
	oob   []byte // control messages received with the query
	reply []byte // the control message sent with the reply; nil: none
	buf   []byte // backing store of reply
}

func (s *sourceAddr) init(c *net.UDPConn) error {
	la, _ := c.LocalAddr().(*net.UDPAddr)
	if la == nil || !la.AddrPort().Addr().IsUnspecified() {
		return nil
	}
	v6 := la.AddrPort().Addr().Is6() && !la.AddrPort().Addr().Is4In6()
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
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
	if err != nil {
		return err
	}
	s.oob = make([]byte, 2*unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	s.buf = make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	return nil
}

// parse turns the control messages of the query just read (the first n
// bytes of oob) into the one to send with its reply.
func (s *sourceAddr) parse(n int) {
	if s.oob == nil {
		return
	}
	s.reply = nil
	b := s.oob[:n]
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(b) {
			return
		}
		data := b[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			s.reply = s.buf[:unix.CmsgSpace(unix.SizeofInet4Pktinfo)]
			clear(s.reply)
			rh := (*unix.Cmsghdr)(unsafe.Pointer(&s.reply[0]))
			rh.Level, rh.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
			rh.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
			out := (*unix.Inet4Pktinfo)(unsafe.Pointer(&s.reply[unix.CmsgLen(0)]))
			out.Spec_dst = in.Addr
			return
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			if netip.AddrFrom16(in.Addr).IsLinkLocalUnicast() {
				return // the kernel needs the interface too: let it choose
			}
			s.reply = s.buf[:unix.CmsgSpace(unix.SizeofInet6Pktinfo)]
			clear(s.reply)
			rh := (*unix.Cmsghdr)(unsafe.Pointer(&s.reply[0]))
			rh.Level, rh.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
			rh.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
			out := (*unix.Inet6Pktinfo)(unsafe.Pointer(&s.reply[unix.CmsgLen(0)]))
			out.Addr = in.Addr
			return
		}
		b = b[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(b)):]
	}
}
