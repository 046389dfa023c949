// Package proctest reads from /proc what a process has cost, for the
// measurements of tests and benchmarks, and what waits on a loopback UDP
// socket, for tests that must know a datagram has arrived or been read.
// It imports nothing of gslbd.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of the times in /proc/PID/stat on Linux.
const clkTck = 100

// CPU returns the user plus system CPU time of process pid (0: this
// process), from /proc/PID/stat, to the clock tick (10ms).
func CPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", path, len(f))
	}
	// utime and stime, fields 14 and 15 of the line.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q, stime %q", path, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// UDPQueued returns the bytes queued for reading on the IPv4 UDP socket
// bound to 127.0.0.1:port, from rx_queue in /proc/net/udp (the kernel's
// accounting of the datagrams waiting, the same for each datagram of one
// size), so that a test can tell when what it sent has arrived, or has
// been read.
func UDPQueued(port int) (int, error) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, err
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local {
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseInt(rx, 16, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/net/udp: rx_queue %q: %v", f[4], err)
			}
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("no socket of 127.0.0.1:%d in /proc/net/udp", port)
}
