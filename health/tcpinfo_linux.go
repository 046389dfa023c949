package health

import (
	"net"
	"time"
	"unsafe"

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
	cerr := raw.Control(func(fd uintptr) {
		srtt, rttvar, ok = kernelRTTFD(int(fd))
	})
	if cerr != nil {
		return 0, 0, false
	}
	return srtt, rttvar, ok
}

// kernelRTTFD is kernelRTT for the socket fd, which the caller owns (the
// event loop's connections).
func kernelRTTFD(fd int) (srtt, rttvar time.Duration, ok bool) {
	// unix.GetsockoptTCPInfo would allocate the struct on every call.
	var info unix.TCPInfo
	size := uint32(unix.SizeofTCPInfo)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || info.Rtt == 0 {
		return 0, 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, time.Duration(info.Rttvar) * time.Microsecond, true
}
