//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/dnstest"
)

// TestTCPFloodKeepsProbes is attack 4 of the trust issue: a node whose
// open-files limit is 128 (set with prlimit, as a small container or a
// forgotten LimitNOFILE would) gets 400 TCP connections from 20 client
// addresses. It holds only what its connection cap allows (a quarter of
// the limit), so its probes keep finding file descriptors: no local probe
// error, the service stays answered from dc1. Before the caps, the
// connections took every descriptor, the probes failed with "too many
// open files", and the node withdrew a healthy site.
func TestTCPFloodKeepsProbes(t *testing.T) {
	prlimit := dnstest.RequireTool(t, "prlimit", "util-linux")
	bin := testBinary(t)
	dir := t.TempDir()
	port := freePort(t, "127.0.1.10")
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`sites: [dc1]
services:
  talk.example.com:
    check: {type: http, port: %d, path: /healthz, interval: 200ms, timeout: 100ms}
    sites:
      dc1: [127.0.1.10]
`, port))
	cfg := filepath.Join(dir, "gslbd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`node: {name: a, site: dc1}
dns: {listen: ["127.0.0.1:0"], tcp: {idle_timeout: 30s}}
admin: {listen: "127.0.0.1:0"}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
demo: {endpoints: ["127.0.1.10:%d"]}
`, port))

	cmd := exec.Command(prlimit, "--nofile=128:128", bin, "serve", "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	serving := regexp.MustCompile(`msg=serving dns=\[(\S+)\] admin=(\S+)`)
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	var dnsAddr, admin string
	select {
	case m := <-found:
		dnsAddr, admin = m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatal("gslbd not serving after 30s")
	}
	if got := answerA(t, dnsAddr, "talk.example.com."); got != "127.0.1.10" {
		t.Fatalf("before the flood talk = %q, want 127.0.1.10", got)
	}

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range 400 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", 2+i%20))}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", dnsAddr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Probes run every 200ms: two seconds is ten rounds under the flood.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if got := answerA(t, dnsAddr, "talk.example.com."); got != "127.0.1.10" {
			t.Fatalf("during the flood talk = %q, want 127.0.1.10", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := metric(t, admin, `gslb_health_local_probe_errors_total{reason="file_descriptors"}`); got != "0" {
		t.Errorf("probes failed for want of file descriptors %s times during the flood", got)
	}
	if got := metric(t, admin, "gslb_health_target_up{target=\"talk.example.com/dc1/127.0.1.10\"}"); got != "1" {
		t.Errorf("target up = %s during the flood, want 1", got)
	}
	open, _ := strconv.Atoi(metric(t, admin, "gslb_dns_tcp_connections"))
	refused, _ := strconv.Atoi(metric(t, admin, `gslb_dns_tcp_connections_refused_total{limit="total"}`))
	if open > 32 || refused < 400-32 {
		t.Errorf("with an open-files limit of 128: %d TCP connections held, %d refused; want at most 32 held", open, refused)
	}
}
