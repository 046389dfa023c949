//go:build unix

package health

import (
	"net"
	"syscall"
)

// rawConn is tcp's raw access, which rawTrip reads and writes through.
func rawConn(tcp *net.TCPConn) syscall.RawConn {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

func sysWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
func sysRead(fd uintptr, b []byte) (int, error)  { return syscall.Read(int(fd), b) }
