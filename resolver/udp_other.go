//go:build !linux

package resolver

import "net"

// ListenUDP binds one UDP socket to addr; n is ignored outside Linux,
// where SO_REUSEPORT does not spread load the same way.
func ListenUDP(addr string, n int) ([]*net.UDPConn, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return []*net.UDPConn{pc.(*net.UDPConn)}, nil
}

// sourceAddr is a no-op outside Linux: bind DNS to specific addresses
// there, or replies on a multi-homed host may leave from another address.
type sourceAddr struct{ oob, reply []byte }

func (s *sourceAddr) init(*net.UDPConn) error { return nil }
func (s *sourceAddr) parse(int)               {}
