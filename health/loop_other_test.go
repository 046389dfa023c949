//go:build !linux

package health

// loopHandled is the probes the event loop finished: none off Linux.
func loopHandled(*Checker) int64 { return 0 }

// loopWakes is how often the event loop woke up: never off Linux.
func loopWakes(*Checker) int64 { return 0 }
