// Package proctest reads what a process has cost from /proc, for the
// measurements of tests and benchmarks. It imports nothing of gslbd.
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
