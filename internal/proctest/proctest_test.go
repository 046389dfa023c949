package proctest

import (
	"net"
	"os"
	"testing"
	"time"
)

// TestCPU: this process's CPU time grows while it spins, and reads the
// same by pid as by 0; a process that does not exist is an error.
func TestCPU(t *testing.T) {
	before, err := CPU(0)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v over 10s of spinning", now)
		}
	}
	if _, err := CPU(-1); err == nil {
		t.Error("CPU(-1) gave no error")
	}
}

// TestUDPQueued: a datagram sent to a socket nobody reads shows in its
// queue, and is gone from it once read.
func TestUDPQueued(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	if n, err := UDPQueued(port); err != nil || n != 0 {
		t.Fatalf("UDPQueued of a new socket = %d, %v; want 0", n, err)
	}
	if _, err := conn.WriteToUDP([]byte("queued"), conn.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if n, err := UDPQueued(port); err != nil || n > 0 {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("datagram not queued within 5s")
		}
	}
	conn.ReadFromUDP(make([]byte, 16))
	if n, err := UDPQueued(port); err != nil || n != 0 {
		t.Errorf("UDPQueued after the read = %d, %v; want 0", n, err)
	}
}
