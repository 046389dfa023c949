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
// the same endpoint with the same check, and counts the requests that
// endpoint receives: one probe per interval, not one per service, while
// each service's target keeps its own ID and state. The probe keeps its
// connection, unless the check says reuse_connection: false, and then
// every probe opens its own.
func TestSharedEndpointProbedOnce(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		t.Run(fmt.Sprintf("reuse_connection %t", reuse), func(t *testing.T) { testSharedEndpointProbedOnce(t, reuse) })
	}
}

func testSharedEndpointProbedOnce(t *testing.T, reuse bool) {
	var conns, requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
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
  check: {type: http, port: %d, path: /healthz, interval: %s, timeout: 50ms, reuse_connection: %t}
services:
%s`, port, interval, reuse, svcs.String()))
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

	// Count the requests over a window: one probe stream makes at most
	// window/(0.9×interval)+1 of them; five would make about five times
	// that.
	const window = 1500 * time.Millisecond
	before, connsBefore, start := requests.Load(), conns.Load(), time.Now()
	time.Sleep(window)
	got, elapsed := requests.Load()-before, time.Since(start)
	opened := conns.Load() - connsBefore
	limit := int64(elapsed/(interval*9/10)) + 1
	t.Logf("%d services sharing one endpoint: %d requests over %d new connections in %v (interval %v)",
		services, got, opened, elapsed.Round(time.Millisecond), interval)
	if got > limit {
		t.Errorf("%d requests in %v, want at most %d: one probe per interval for the shared endpoint, not one per service",
			got, elapsed.Round(time.Millisecond), limit)
	}
	if got == 0 {
		t.Error("no probe reached the endpoint")
	}
	// A probe slowed past its 50ms timeout by a busy machine costs a new
	// connection; without reuse every probe opens one.
	if reuse && opened > got/4 {
		t.Errorf("%d new connections for %d requests, want the probe's connection kept", opened, got)
	}
	// (One probe may straddle the window's edge.)
	if !reuse && (opened < got-1 || opened > got+1) {
		t.Errorf("%d new connections for %d requests with reuse_connection: false, want one each", opened, got)
	}
}
