//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// ownedByRoot reports whether root owns the file.
func ownedByRoot(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0
}
