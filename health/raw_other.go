//go:build !unix

package health

import (
	"errors"
	"net"
	"syscall"
)

// rawConn is nil where rawTrip's system calls are not written: probes
// then write and read through the connection itself.
func rawConn(*net.TCPConn) syscall.RawConn { return nil }

func sysWrite(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
func sysRead(uintptr, []byte) (int, error)  { return 0, errors.ErrUnsupported }
