//go:build linux && !386

package health

import (
	"os"
	"syscall"
	"unsafe"
)

// loopConnects says that the loop can make the connects of tcp checks
// (see handOverConnect): it makes them with raw system calls, which
// linux/386 multiplexes through socketcall.
const loopConnects = true

// rawConnect opens a non-blocking TCP socket that closes with a reset,
// and starts its connect to sa (see connectAddr): the connect is in
// progress, or done, when it returns no error.
func rawConnect(sa []byte) (int, error) {
	family := *(*uint16)(unsafe.Pointer(&sa[0]))
	r, _, errno := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(family), syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("socket", errno)
	}
	fd := int(r)
	linger := syscall.Linger{Onoff: 1, Linger: 0}
	_, _, errno = syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, uintptr(unsafe.Pointer(&linger)), unsafe.Sizeof(linger), 0)
	if errno != 0 {
		rawClose(fd)
		return -1, os.NewSyscallError("setsockopt", errno)
	}
	_, _, errno = syscall.RawSyscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
	if errno != 0 && errno != syscall.EINPROGRESS && errno != syscall.EINTR {
		rawClose(fd)
		return -1, os.NewSyscallError("connect", errno)
	}
	return fd, nil
}

// connectError is the outcome of fd's connect, once the socket says it
// is done: nil when connected.
func connectError(fd int) error {
	var v int32
	n := uint32(unsafe.Sizeof(v))
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, syscall.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0)
	switch {
	case errno != 0:
		return os.NewSyscallError("getsockopt", errno)
	case v != 0:
		return os.NewSyscallError("connect", syscall.Errno(v))
	}
	return nil
}
