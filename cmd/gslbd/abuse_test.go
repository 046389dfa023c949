package main

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// closedByPeer reports whether the server closed c: a read returns EOF or
// a reset rather than timing out.
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestTCPConnectionFlood opens 100 idle TCP connections from one client
// address (127.0.0.2). The node holds at most dns.tcp.max_connections_per_client
// of them and closes the rest on arrival, counting them; another client
// (127.0.0.3) is answered over TCP and UDP meanwhile; and the connections
// it held are closed after the idle timeout. Before the limits, all 100
// stayed open for 8 s each, renewable with one query every 8 s up to
// 1,000 queries, until the node ran out of file descriptors.
func TestTCPConnectionFlood(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "example.com.zone"), strings.Replace(reloadZone, "%s", "192.0.2.10", 1))
	cfg := filepath.Join(dir, "gslbd.yaml")
	writeFile(t, cfg, `node: {name: t, site: dc1}
dns:
  listen: ["127.0.0.1:0"]
  tcp: {max_connections_per_client: 8, idle_timeout: 1s}
admin: {listen: "127.0.0.1:0"}
zones: [{origin: example.com., file: example.com.zone}]
`)
	n := startNode(t, cfg)
	dnsAddr := n.bound.DNS[0]

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	var conns []net.Conn
	for i := range 100 {
		c, err := d.Dial("tcp", dnsAddr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue // closed on arrival before the dial returned
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	open := func() int {
		k := 0
		for _, c := range conns {
			if !closedByPeer(c) {
				k++
			}
		}
		return k
	}
	// The flood is held to 8 connections (and those go when idle: check
	// the count before the idle timeout can pass).
	start := time.Now()
	if k := open(); k > 8 && time.Since(start) < time.Second {
		t.Errorf("%d of 100 idle connections from one client still open, want at most 8", k)
	}
	if got, _ := strconv.Atoi(metric(t, n.bound.Admin, `gslb_dns_tcp_connections_refused_total{limit="per_client"}`)); got < 92 {
		t.Errorf("gslb_dns_tcp_connections_refused_total{limit=\"per_client\"} = %d, want at least 92", got)
	}

	// Another client is answered over TCP and UDP.
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	tc := &dns.Client{Net: "tcp", Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}}
	if r, _, err := tc.Exchange(m, dnsAddr); err != nil || len(r.Answer) != 1 {
		t.Errorf("TCP query from another client during the flood: %v %v", r, err)
	}
	if got := answerA(t, dnsAddr, "www.example.com."); got != "192.0.2.10" {
		t.Errorf("UDP answer during the flood: %q", got)
	}

	// The idle ones are closed after the idle timeout (1s; generous bound).
	eventually(t, 10*time.Second, "every idle connection closed", func() bool { return open() == 0 })
	eventually(t, 5*time.Second, "gslb_dns_tcp_connections back to 0", func() bool {
		return metric(t, n.bound.Admin, "gslb_dns_tcp_connections") == "0"
	})
}

// TestTCPLimitsDefaults checks the defaults and that the connection cap
// leaves file descriptors to the rest of the node.
func TestTCPLimitsDefaults(t *testing.T) {
	cfg, err := parseConfig("gslbd.yaml", []byte("node: {name: t}\nzones: [{origin: example.com., file: x}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.DNS.TCP
	if tc.MaxConnectionsPerClient != 32 || tc.IdleTimeout != 3*time.Second || tc.MaxQueries != 100 {
		t.Errorf("dns.tcp defaults = %+v", tc)
	}
	if lim := fdLimit(); lim > 0 && uint64(tc.MaxConnections) > lim/4 || tc.MaxConnections > 1024 || tc.MaxConnections < 1 {
		t.Errorf("dns.tcp.max_connections default %d with an open-files limit of %d", tc.MaxConnections, fdLimit())
	}
	if cfg.DNS.RRL.ResponsesPerSecond != 0 || *cfg.DNS.RRL.Slip != 2 {
		t.Errorf("dns.rrl defaults = %+v", cfg.DNS.RRL)
	}
	for _, bad := range []string{
		"dns: {tcp: {idle_timeout: -1s}}", "dns: {tcp: {max_queries: -1}}",
		"dns: {rrl: {responses_per_second: 10, ipv4_prefix: 33}}", "dns: {rrl: {slip: -1}}", "dns: {rrl: {window: 10ms}}",
	} {
		if _, err := parseConfig("gslbd.yaml", []byte(bad+"\nnode: {name: t}\nzones: [{origin: example.com., file: x}]\n")); err == nil {
			t.Errorf("parseConfig(%s) accepted", bad)
		}
	}
}
