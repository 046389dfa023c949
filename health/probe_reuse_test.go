package health

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run HTTP probes the way the Checker does, with a connection
// slot that keeps the connection from one probe to the next, against real
// servers on 127.0.0.1:0, and count what the servers see.

// keptProbe runs p through slot as the Checker runs a group's probe, and
// returns its error text, or "" for success.
func keptProbe(p Probe, slot *connSlot, addr netip.AddrPort, timeout time.Duration) string {
	ctx := withTrace(context.Background(), &probeTrace{conns: slot})
	if err := runProbe(ctx, p, addr, timeout); err != nil {
		return err.Error()
	}
	return ""
}

// rawServer is an HTTP endpoint written by hand, so that a test decides
// every byte of its answers and when it closes. For each request head it
// reads it calls answer, which writes the response and says whether to go
// on reading this connection (false leaves it to the server's close).
type rawServer struct {
	ln       net.Listener
	accepts  atomic.Int64
	requests atomic.Int64
	answer   func(conn net.Conn, head []byte) bool

	mu    sync.Mutex
	conns []net.Conn
}

func newRawServer(t testing.TB, answer func(conn net.Conn, head []byte) bool) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, answer: answer}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(func() {
		s.kill(false)
		wg.Wait()
	})
	return s
}

func (s *rawServer) addr(t testing.TB) netip.AddrPort { return addrPort(t, s.ln.Addr()) }

func (s *rawServer) serve(conn net.Conn) {
	buf := make([]byte, 0, 4096)
	for {
		end := bytes.Index(buf, []byte("\r\n\r\n"))
		for end < 0 {
			if len(buf) == cap(buf) {
				return
			}
			k, err := conn.Read(buf[len(buf):cap(buf)])
			if err != nil {
				return
			}
			buf = buf[:len(buf)+k]
			end = bytes.Index(buf, []byte("\r\n\r\n"))
		}
		s.requests.Add(1)
		if !s.answer(conn, buf[:end+4]) {
			return
		}
		buf = buf[:copy(buf, buf[end+4:])]
	}
}

// kill closes the listener and every connection, as the kernel does when
// the server process dies: with a reset when reset is set.
func (s *rawServer) kill(reset bool) {
	s.ln.Close()
	s.closeConns(reset)
}

// closeConns closes every connection, with a reset when reset is set.
func (s *rawServer) closeConns(reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if reset {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
	s.conns = nil
}

// reply returns an answer that writes resp to every request.
func reply(resp string) func(net.Conn, []byte) bool {
	return func(conn net.Conn, _ []byte) bool {
		_, err := conn.Write([]byte(resp))
		return err == nil
	}
}

// okResponse is a 200 with the body "ok".
const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// keepCases are responses to a probe that keeps its connection: whether
// the body contains "ok" (hasOK), and whether the connection may be used
// again (wantKept). The probe on a goroutine of its own
// (TestHTTPProbeKeepsConnection) and the event loop
// (TestLoopKeepsConnection) are both held to every one.
var keepCases = []struct {
	name     string
	resp     string
	hasOK    bool // the body contains "ok"
	wantKept bool
}{
	{"content-length", okResponse, true, true},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n", true, true},
	{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n", true, true},
	{"no content", "HTTP/1.1 204 No Content\r\n\r\n", false, true},
	{"interim response first", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + okResponse, true, true},
	{"header line longer than the buffer", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 2\r\n\r\nok", true, true},
	{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true, true},
	{"Connection: close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", true, false},
	{"Connection: close among tokens", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: x-foo, Close\r\n\r\nok", true, false},
	{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true, false},
	{"chunked and content-length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true, false},
	{"body over 64 KiB", "HTTP/1.1 200 OK\r\nContent-Length: 70002\r\n\r\nok" + strings.Repeat("x", 70000), true, false},
	{"body of 60 KiB", "HTTP/1.1 200 OK\r\nContent-Length: 61440\r\n\r\n" + strings.Repeat("x", 61438) + "ok", true, true},
	{"bytes after the response", okResponse + "HTTP/1.1 200 OK\r\n", true, false},
}

// TestHTTPProbeKeepsConnection: three probes through one slot use one
// connection when the response allows it, and a new connection each time
// when it does not; every probe succeeds either way, with and without a
// body to search.
func TestHTTPProbeKeepsConnection(t *testing.T) {
	for _, tc := range keepCases {
		for _, search := range []bool{false, true} {
			if search && !tc.hasOK {
				continue
			}
			name := tc.name
			cfg := HTTPCheck{}
			if search {
				name += "/body searched"
				cfg.BodyContains = "ok"
			}
			t.Run(name, func(t *testing.T) {
				srv := newRawServer(t, reply(tc.resp))
				p, slot := NewHTTPProbe(cfg), new(connSlot)
				defer slot.close()
				for i := range 3 {
					if got := keptProbe(p, slot, srv.addr(t), 5*time.Second); got != "" {
						t.Fatalf("probe %d = %q, want success", i+1, got)
					}
				}
				want := int64(3)
				if tc.wantKept {
					want = 1
				}
				if got := srv.accepts.Load(); got != want {
					t.Errorf("3 probes opened %d connections, want %d", got, want)
				}
			})
		}
	}
}

// TestHTTPProbeResponses: how responses are judged, each on a connection
// the server closes after its answer.
func TestHTTPProbeResponses(t *testing.T) {
	tests := []struct {
		name string
		cfg  HTTPCheck
		resp string
		want string
	}{
		{"status line only", HTTPCheck{}, "HTTP/1.1 200\r\n\r\n", ""},
		{"bare LF", HTTPCheck{}, "HTTP/1.1 200 OK\nContent-Length: 0\n\n", ""},
		{"body until the end", HTTPCheck{BodyContains: "ready"}, "HTTP/1.1 200 OK\r\n\r\nall ready", ""},
		{"chunked body searched across chunks", HTTPCheck{BodyContains: "ready"}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nrea\r\n2\r\ndy\r\n0\r\n\r\n", ""},
		{"chunked body searched in its first 64 KiB", HTTPCheck{BodyContains: "ready"},
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n" + strings.Repeat("x", 0x10000) + "\r\n5\r\nready\r\n0\r\n\r\n", `body does not contain "ready"`},
		{"HEAD has no body", HTTPCheck{Method: "HEAD"}, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", ""},
		{"short body", HTTPCheck{BodyContains: "ok"}, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", "read body: unexpected EOF"},
		{"status judged before the body", HTTPCheck{}, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\n\r\n", "status 503, want 200-399"},
		{"nothing", HTTPCheck{}, "", "unexpected EOF"},
		{"head cut short", HTTPCheck{}, "HTTP/1.1 200 OK\r\nContent-Le", "unexpected EOF"},
		{"not HTTP", HTTPCheck{}, "SSH-2.0-OpenSSH_9.6\r\n", `malformed HTTP response "SSH-2.0-OpenSSH_9.6"`},
		{"version", HTTPCheck{}, "HTTP/2 200\r\n\r\n", `malformed HTTP version "HTTP/2"`},
		{"status code", HTTPCheck{}, "HTTP/1.1 2x0 OK\r\n\r\n", `malformed HTTP status code "2x0"`},
		{"header line", HTTPCheck{}, "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", `malformed header line "no colon"`},
		{"content-length", HTTPCheck{}, "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", `bad Content-Length "-1"`},
		{"two content-lengths", HTTPCheck{}, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "conflicting Content-Length headers"},
		{"transfer encoding", HTTPCheck{}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", `unsupported transfer encoding "gzip, chunked"`},
		{"chunk size", HTTPCheck{BodyContains: "ok"}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", `read body: bad chunk size "zz"`},
		{"interim responses without end", HTTPCheck{}, strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 7), "more than 5 interim responses"},
		{"head too large", HTTPCheck{}, "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 70) + "\r\n", "response head too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
				conn.Write([]byte(tc.resp))
				conn.Close()
				return false
			})
			slot := new(connSlot)
			defer slot.close()
			if got := keptProbe(NewHTTPProbe(tc.cfg), slot, srv.addr(t), 5*time.Second); got != tc.want {
				t.Errorf("probe(%+v) of %.40q = %q, want %q", tc.cfg, tc.resp, got, tc.want)
			}
		})
	}
}

// TestHTTPProbeIdleClose: an endpoint that closes a connection while it
// is idle between probes (a keep-alive timeout shorter than the interval)
// makes no probe fail: the probe finds the connection closed before any
// answer and retries once on a new one. Both ways of closing: an orderly
// close, and a reset.
func TestHTTPProbeIdleClose(t *testing.T) {
	for _, reset := range []bool{false, true} {
		name := "close"
		if reset {
			name = "reset"
		}
		t.Run(name, func(t *testing.T) {
			srv := newRawServer(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			p, slot := NewHTTPProbe(HTTPCheck{}), new(connSlot)
			defer slot.close()
			for i := range 4 {
				if got := keptProbe(p, slot, srv.addr(t), 5*time.Second); got != "" {
					t.Fatalf("probe %d = %q, want success", i+1, got)
				}
				// The endpoint's idle timeout, between two probes.
				srv.closeConns(reset)
			}
			if got := srv.requests.Load(); got != 4 {
				t.Errorf("4 probes made %d requests, want 4 (the endpoint answers each)", got)
			}
		})
	}
}

// TestHTTPProbeRetriesOnce: an endpoint that closes every connection
// without answering fails the probe even on a kept connection: the retry
// on a new connection meets the same end, and there is one retry only.
func TestHTTPProbeRetriesOnce(t *testing.T) {
	var answering atomic.Bool
	answering.Store(true)
	srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
		if answering.Load() {
			conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			return true
		}
		conn.Close()
		return false
	})
	p, slot := NewHTTPProbe(HTTPCheck{}), new(connSlot)
	defer slot.close()
	if got := keptProbe(p, slot, srv.addr(t), 5*time.Second); got != "" {
		t.Fatalf("probe = %q, want success", got)
	}
	answering.Store(false)
	if got, want := keptProbe(p, slot, srv.addr(t), 5*time.Second), "unexpected EOF"; got != want {
		t.Errorf("probe of an endpoint that closes without answering = %q, want %q", got, want)
	}
	if got := srv.accepts.Load(); got != 2 {
		t.Errorf("connections = %d, want 2 (the kept one, and one retry)", got)
	}
	if got := srv.requests.Load(); got != 3 {
		t.Errorf("requests = %d, want 3 (one answered, two unanswered)", got)
	}
}

// TestHTTPProbeKilledServer: when the endpoint's process dies, the probe
// on its kept connection reports what a new user would meet, a refused
// connection, at once rather than after its timeout.
func TestHTTPProbeKilledServer(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "reset"}[reset], func(t *testing.T) {
			srv := newRawServer(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			addr := srv.addr(t)
			p, slot := NewHTTPProbe(HTTPCheck{}), new(connSlot)
			defer slot.close()
			if got := keptProbe(p, slot, addr, 5*time.Second); got != "" {
				t.Fatalf("probe = %q, want success", got)
			}
			srv.kill(reset)
			start := time.Now()
			if got, want := keptProbe(p, slot, addr, 5*time.Second), "connect: connection refused"; got != want {
				t.Errorf("probe after the server died = %q, want %q", got, want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("probe after the server died took %v, want far less than its 5s timeout", d)
			}
		})
	}
}

// TestHTTPProbeHangingEndpoint: an endpoint that stops answering on a kept
// connection times the probe out, with no retry to stretch it, and so
// does one that accepts new connections and never answers.
func TestHTTPProbeHangingEndpoint(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var hang atomic.Bool
	srv := newRawServer(t, func(conn net.Conn, _ []byte) bool {
		if hang.Load() {
			<-release
			return false
		}
		conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		return true
	})
	addr := srv.addr(t)
	p, slot := NewHTTPProbe(HTTPCheck{}), new(connSlot)
	defer slot.close()
	if got := keptProbe(p, slot, addr, 5*time.Second); got != "" {
		t.Fatalf("probe = %q, want success", got)
	}
	hang.Store(true)
	for i := range 2 {
		start := time.Now()
		if got, want := keptProbe(p, slot, addr, 200*time.Millisecond), "timeout after 200ms"; got != want {
			t.Errorf("probe %d of a hanging endpoint = %q, want %q", i+1, got, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("probe %d of a hanging endpoint took %v, want about its 200ms timeout", i+1, d)
		}
	}
	if got := srv.accepts.Load(); got != 2 {
		t.Errorf("connections = %d, want 2 (the kept one, then a new one after the timeout)", got)
	}
}

// TestHTTPProbeDisableReuse: with DisableReuse (reuse_connection: false)
// every probe opens its own connection and says so in its request, even
// run by a Checker.
func TestHTTPProbeDisableReuse(t *testing.T) {
	var closing atomic.Int64
	srv := newRawServer(t, func(conn net.Conn, head []byte) bool {
		if bytes.Contains(head, []byte("\r\nConnection: close\r\n")) {
			closing.Add(1)
		}
		conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		return true
	})
	p, slot := NewHTTPProbe(HTTPCheck{DisableReuse: true}), new(connSlot)
	defer slot.close()
	for i := range 3 {
		if got := keptProbe(p, slot, srv.addr(t), 5*time.Second); got != "" {
			t.Fatalf("probe %d = %q, want success", i+1, got)
		}
	}
	if got := srv.accepts.Load(); got != 3 {
		t.Errorf("3 probes opened %d connections, want 3", got)
	}
	if got := closing.Load(); got != 3 {
		t.Errorf("%d of 3 requests said Connection: close, want 3", got)
	}
}

// TestHTTPSProbeKeepsConnection: an HTTPS probe keeps its TLS connection
// too, and a probe with other TLS settings does not inherit it.
func TestHTTPSProbeKeepsConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	countConns(srv, &conns)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	srv.StartTLS()
	defer srv.Close()
	addr := addrPort(t, srv.Listener.Addr())
	slot := new(connSlot)
	defer slot.close()
	insecure := NewHTTPProbe(HTTPCheck{Scheme: "https", InsecureSkipVerify: true})
	for i := range 3 {
		if got := keptProbe(insecure, slot, addr, 5*time.Second); got != "" {
			t.Fatalf("probe %d = %q, want success", i+1, got)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("3 HTTPS probes opened %d connections, want 1", got)
	}
	// The group's check changed (a reload) to one that verifies the
	// certificate: it must not ride on the unverified connection.
	verifying := NewHTTPProbe(HTTPCheck{Scheme: "https"})
	want := "tls: failed to verify certificate: x509: certificate signed by unknown authority"
	if got := keptProbe(verifying, slot, addr, 5*time.Second); got != want {
		t.Errorf("verifying probe after an insecure one = %q, want %q", got, want)
	}
}
