package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set by the Makefile's build target with
// -ldflags "-X main.version=$(git describe) -X main.commit=...": the
// fallback when the binary carries no VCS stamp (go build -buildvcs=false,
// or GOFLAGS=-buildvcs=false as on the project's build machine).
var (
	version = "dev"
	commit  = ""
)

// buildInfo says what this binary is.
type buildInfo struct {
	Version   string // module version (v1.2.3), else the -X version, else "dev"
	Revision  string // VCS commit, "" when unknown
	Modified  bool   // built from a work tree with local changes
	GoVersion string
}

// readBuildInfo prefers what the Go toolchain stamped into the binary
// (module version, vcs.revision, vcs.modified) and falls back to the
// linker-set variables.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: commit, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" && version == "dev" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the line `gslbd version` prints.
func (b buildInfo) String() string {
	rev := b.Revision
	switch {
	case rev == "":
		rev = "unknown commit"
	case b.Modified:
		rev += " (modified)"
	}
	return fmt.Sprintf("gslbd %s, commit %s, %s", b.Version, rev, b.GoVersion)
}
