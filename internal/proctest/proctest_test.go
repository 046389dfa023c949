package proctest

import (
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
