package health

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// kernelRTT returns the kernel's smoothed round trip and its mean
// deviation for conn (TCP_INFO's tcpi_rtt and tcpi_rttvar), which the
// kernel keeps by RFC 6298 from the acknowledgements of everything sent on
// the connection. ok is false when they are not available.
func kernelRTT(conn *net.TCPConn) (srtt, rttvar time.Duration, ok bool) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var info *unix.TCPInfo
	cerr := raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil || err != nil || info.Rtt == 0 {
		return 0, 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, time.Duration(info.Rttvar) * time.Microsecond, true
}
