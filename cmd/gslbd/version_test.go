package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand builds the binary the way the Makefile does, with
// VCS stamping off (GOFLAGS=-buildvcs=false, as on the build machine), and
// checks that `gslbd version` says the version and commit given to the
// linker.
func TestVersionCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "gslbd")
	build := exec.Command("go", "build", "-buildvcs=false",
		"-ldflags", "-X main.version=v1.2.3-test -X main.commit=0123abcd", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("gslbd version: %v", err)
	}
	want := "gslbd v1.2.3-test, commit 0123abcd, " + runtime.Version() + "\n"
	if string(out) != want {
		t.Errorf("gslbd version = %q, want %q", out, want)
	}
}

// TestVersionInProcess: the test binary has no linker-set commit; the
// line still names the Go version and says when the commit is unknown.
func TestVersionInProcess(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard, hooks{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "gslbd ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("gslbd version = %q, want the version, commit and %s", out.String(), runtime.Version())
	}
}
