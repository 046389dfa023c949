package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedEndpointProbedOnce runs a node whose five services all list
// the same endpoint with the same check, and counts the connections that
// endpoint receives: one probe per interval, not one per service, while
// each service's target keeps its own ID and state.
func TestSharedEndpointProbedOnce(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	const services, interval = 5, 100 * time.Millisecond
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	var svcs strings.Builder
	for i := range services {
		fmt.Fprintf(&svcs, "  s%d.example.com:\n    sites: {dc1: [127.0.0.1]}\n", i)
	}
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`sites: [dc1]
defaults:
  check: {type: http, port: %d, path: /healthz, interval: %s, timeout: 50ms}
services:
%s`, port, interval, svcs.String()))
	cfg := filepath.Join(dir, "node.yaml")
	writeFile(t, cfg, fmt.Sprintf(`node: {name: n1, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0", anonymous_read: true}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
state_dir: %s
`, filepath.Join(dir, "state")))
	n := startNode(t, cfg)

	// Every service's target is up, under its own ID.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := adminGet(t, n.bound.Admin, "/metrics")
		up := 0
		for i := range services {
			if strings.Contains(m, fmt.Sprintf(`gslb_health_target_up{target="s%d.example.com/dc1/127.0.0.1"} 1`, i)) {
				up++
			}
		}
		if up == services {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d targets up after 10s; metrics:\n%s", up, services, m)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Count the connections over a window: one probe stream makes at most
	// window/(0.9×interval)+1 of them; five would make about five times
	// that.
	const window = 1500 * time.Millisecond
	before, start := conns.Load(), time.Now()
	time.Sleep(window)
	got, elapsed := conns.Load()-before, time.Since(start)
	limit := int64(elapsed/(interval*9/10)) + 1
	t.Logf("%d services sharing one endpoint: %d connections in %v (interval %v)", services, got, elapsed.Round(time.Millisecond), interval)
	if got > limit {
		t.Errorf("%d connections in %v, want at most %d: one probe per interval for the shared endpoint, not one per service",
			got, elapsed.Round(time.Millisecond), limit)
	}
	if got == 0 {
		t.Error("no probe reached the endpoint")
	}
}
