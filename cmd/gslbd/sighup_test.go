//go:build unix

package main

import (
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/testwait"
)

// TestSIGHUPReloads sends the test process a real SIGHUP while a node
// serves without a reload hook: the node reloads its zones.
func TestSIGHUPReloads(t *testing.T) {
	zone, cfg := reloadFixture(t, `{disabled: true}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	ready := make(chan bound, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", cfg}, func(string) string { return "" }, io.Discard, logs,
			hooks{ready: func(b bound) { ready <- b }})
	}()
	var b bound
	select {
	case b = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("not serving after 30s")
	}
	writeFile(t, zone, strings.Replace(reloadZone, "%s", "192.0.2.99", 1))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "www A becomes 192.0.2.99 after SIGHUP", func() bool {
		return answerA(t, b.DNS[0], "www.example.com.") == "192.0.2.99"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve stopped with %v", err)
	}
}

// TestSIGHUPForwardingStops shows that the SIGHUP forwarder ends when
// told: stop returns only once its goroutine has.
func TestSIGHUPForwardingStops(t *testing.T) {
	_, stop := sighupReloads()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return within 10s")
	}
}
