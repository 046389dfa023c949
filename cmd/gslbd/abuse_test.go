package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/internal/testwait"
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
		var k atomic.Int32
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				if !closedByPeer(c) {
					k.Add(1)
				}
			})
		}
		wg.Wait()
		return int(k.Load())
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
	testwait.Until(t, 10*time.Second, "every idle connection closed", func() bool { return open() == 0 })
	testwait.Until(t, 5*time.Second, "gslb_dns_tcp_connections back to 0", func() bool {
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

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gslbd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for 127.0.0.1 with the given serial number,
// and its key, to certFile and keyFile (mode 0600).
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gslbd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
}

// adminFixture writes a node configuration with a tokens file and the
// given admin settings, and returns its path.
func adminFixture(t *testing.T, admin string) string {
	t.Helper()
	_, cfg := reloadFixture(t, `{listen: "127.0.0.1:0"}`)
	dir := filepath.Dir(cfg)
	writeFile(t, filepath.Join(dir, "tokens"), "ops write "+testWriteToken+"\n")
	writeFile(t, cfg, `node: {name: t, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0", tokens_file: tokens, `+admin+`}
zones: [{origin: example.com., file: example.com.zone}]
`)
	return cfg
}

// TestAdminSlowRequests: an unauthenticated POST that declares a 100 kB
// body and sends it a byte at a time is cut off by admin.read_timeout,
// and a kept-alive connection left idle is closed after
// admin.idle_timeout. Before, both held their connection for as long as
// the client liked.
func TestAdminSlowRequests(t *testing.T) {
	n := startNode(t, adminFixture(t, "read_timeout: 1s, idle_timeout: 1s"))

	c, err := net.Dial("tcp", n.bound.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /api/v1/drains HTTP/1.1\r\nHost: gslbd\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a POST trickling its body still held its connection after %v", time.Since(start).Round(time.Second))
	}
	t.Logf("slow POST cut off after %v", time.Since(start).Round(10*time.Millisecond))

	// An idle kept-alive connection.
	k, err := net.Dial("tcp", n.bound.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := io.WriteString(k, "GET /healthz HTTP/1.1\r\nHost: gslbd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(k)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start = time.Now()
	_ = k.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := br.ReadByte(); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("an idle kept-alive connection still open after %v", time.Since(start).Round(time.Second))
	}

	// A header over the limit is refused.
	req, _ := http.NewRequest("GET", "http://"+n.bound.Admin+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB header: %s, want 431", resp.Status)
		}
	}
}

// TestAdminTLS serves the admin API over HTTPS with a certificate made
// here, through the CLI's client with a CA file, and renews the
// certificate with a reload: new connections get the new one.
func TestAdminTLS(t *testing.T) {
	ca := newTestCA(t)
	cfg := adminFixture(t, "tls_cert_file: admin.crt, tls_key_file: admin.key")
	dir := filepath.Dir(cfg)
	certFile, keyFile := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	ca.issue(t, 100, certFile, keyFile)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, string(ca.pem))
	n := startNode(t, cfg)

	// The CLI, with the CA from the environment.
	env := map[string]string{"GSLBD_CA_FILE": caFile, "GSLBD_TOKEN": testWriteToken}
	var out, errOut strings.Builder
	code, msg := exitCode(t, run(t.Context(), []string{"status", "-admin", "https://" + n.bound.Admin},
		func(k string) string { return env[k] }, &out, &errOut, hooks{}))
	if code != 0 || !strings.Contains(out.String(), "t") {
		t.Fatalf("gslbd status over https: exit %d %s\n%s%s", code, msg, out.String(), errOut.String())
	}
	// Without the CA, the certificate is not trusted; plain HTTP gets nothing.
	code, _ = exitCode(t, run(t.Context(), []string{"status", "-admin", "https://" + n.bound.Admin},
		func(k string) string { return map[string]string{"GSLBD_TOKEN": testWriteToken}[k] }, &out, &errOut, hooks{}))
	if code == 0 {
		t.Error("gslbd status trusted a certificate of an unknown CA")
	}
	if resp, err := http.Get("http://" + n.bound.Admin + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on a TLS admin listener")
		}
	}

	serial := func() int64 {
		pool := x509.NewCertPool()
		pool.AddCert(ca.cert)
		c, err := tls.Dial("tcp", n.bound.Admin, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 100 {
		t.Fatalf("serving certificate %d, want 100", s)
	}
	ca.issue(t, 101, certFile, keyFile)
	n.reload <- struct{}{}
	testwait.Until(t, 10*time.Second, "the renewed certificate served", func() bool { return serial() == 101 })

	// A key that does not match the certificate fails the reload and
	// keeps the certificate in use; check says why.
	other := filepath.Join(dir, "other.crt")
	ca.issue(t, 102, other, filepath.Join(dir, "other.key"))
	data, _ := os.ReadFile(other)
	writeFile(t, certFile, string(data))
	code, msg = exitCode(t, run(t.Context(), []string{"check", "-config", cfg}, func(string) string { return "" }, &out, &errOut, hooks{}))
	if code != 2 || !strings.Contains(msg, "admin.tls_cert_file") {
		t.Errorf("gslbd check with a mismatched key: exit %d %s", code, msg)
	}
	n.reload <- struct{}{}
	testwait.Until(t, 10*time.Second, "reload failure logged", func() bool { return strings.Contains(n.logs.String(), "reload failed") })
	if s := serial(); s != 101 {
		t.Errorf("after a failed reload serving certificate %d, want 101", s)
	}
}
