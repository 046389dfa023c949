package dnstest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of the command name (dig, named-checkzone),
// or skips the test saying which Debian package provides it. Where the suite
// must be complete (CI, or GSLBD_REQUIRE_DIG as make test sets it) a missing
// tool fails the test instead.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("GSLBD_REQUIRE_DIG") != "" || os.Getenv("CI") != "" {
			t.Fatalf("%s not found; install %s (make test does)", name, debianPackage)
		}
		t.Skipf("%s not found; install %s or run make test, which does", name, debianPackage)
	}
	return p
}
