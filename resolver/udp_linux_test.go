package resolver

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUDPRecvBuffer: the DNS sockets get a receive buffer large enough to
// ride out a reader that is not scheduled for a moment (the kernel
// reports twice what was set, for its bookkeeping). Without privilege
// the system's net.core.rmem_max caps it.
func TestUDPRecvBuffer(t *testing.T) {
	conns, err := ListenUDP("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		defer c.Close()
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		rc.Control(func(fd uintptr) { got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
		want := RecvBuffer
		if os.Geteuid() != 0 {
			if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
				var max int
				fmt.Sscan(string(b), &max)
				want = min(want, max)
			}
		}
		if got < want {
			t.Errorf("receive buffer %d bytes, want at least %d", got, want)
		}
	}
}
