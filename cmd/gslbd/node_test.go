package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a node's log output safely across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testNode is a gslbd node running in-process through run.
type testNode struct {
	bound  bound
	logs   *syncBuffer
	reload chan struct{}
	stop   func() error
}

// startNode runs `gslbd serve -config path` in-process and waits until it
// serves. The node stops in t.Cleanup (or earlier through stop).
func startNode(t testing.TB, path string, extra ...string) *testNode {
	t.Helper()
	return startNodeEnv(t, path, nil, extra...)
}

// startNodeEnv is startNode with environment variables for the node.
func startNodeEnv(t testing.TB, path string, env map[string]string, extra ...string) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{logs: &syncBuffer{}, reload: make(chan struct{}, 1)}
	ready := make(chan bound, 1)
	done := make(chan error, 1)
	args := append([]string{"serve", "-config", path, "-log-level", "debug"}, extra...)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, n.logs,
			hooks{ready: func(b bound) { ready <- b }, reload: n.reload})
	}()
	select {
	case n.bound = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("gslbd serve -config %s: %v\nlogs:\n%s", path, err, n.logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("gslbd serve -config %s: not serving after 30s\nlogs:\n%s", path, n.logs)
	}
	var once sync.Once
	var stopErr error
	n.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("gslbd did not stop within 30s\nlogs:\n%s", n.logs)
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("gslbd stopped with error: %v", err)
		}
		if t.Failed() {
			t.Logf("gslbd logs:\n%s", n.logs)
		}
	})
	return n
}

// adminGet fetches path from a node's admin listener and returns the body,
// failing the test unless the status is 200.
func adminGet(t testing.TB, admin, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return string(body)
}
