//go:build unix

package main

import "syscall"

// fdLimit returns the soft limit on open files (RLIMIT_NOFILE; the Go
// runtime raises it to the hard limit at start-up), or 0 if unknown.
func fdLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
