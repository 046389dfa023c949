package health

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run real probes against servers on 127.0.0.1:0, with real
// time: only the timeout case waits, for its 100ms.

func addrPort(t testing.TB, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := addrPort(t, ln.Addr())
	ln.Close()
	return ap
}

// probeErr runs p the way the Checker does and returns its error text, or
// "" for success.
func probeErr(p Probe, addr netip.AddrPort, timeout time.Duration) string {
	if err := runProbe(context.Background(), p, addr, timeout); err != nil {
		return err.Error()
	}
	return ""
}

func TestHTTPProbe(t *testing.T) {
	big := strings.Repeat("x", maxBody) + "ready"
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok: ready")) })
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/302", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/503", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) })
	mux.HandleFunc("/strict", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead || r.Host != "www.example.com" || r.URL.RequestURI() != "/strict?deep=1" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := addrPort(t, srv.Listener.Addr())

	tests := []struct {
		name string
		cfg  HTTPCheck
		want string
	}{
		{"default ok", HTTPCheck{}, ""},
		{"default wants 200-399", HTTPCheck{Path: "/503"}, "status 503, want 200-399"},
		{"explicit status", HTTPCheck{Path: "/204", ExpectStatus: []int{200}}, "status 204, want 200"},
		{"one of several", HTTPCheck{Path: "/204", ExpectStatus: []int{200, 204}}, ""},
		{"none of several", HTTPCheck{Path: "/503", ExpectStatus: []int{200, 204}}, "status 503, want 200 or 204"},
		{"redirect is not followed", HTTPCheck{Path: "/302"}, ""},
		{"redirect status judged", HTTPCheck{Path: "/302", ExpectStatus: []int{200}}, "status 302, want 200"},
		{"body contains", HTTPCheck{BodyContains: "ready"}, ""},
		{"body mismatch", HTTPCheck{BodyContains: "steady"}, `body does not contain "steady"`},
		{"body read at most 64 KiB", HTTPCheck{Path: "/big", BodyContains: "ready"}, `body does not contain "ready"`},
		{"method, path, query and host", HTTPCheck{Method: "HEAD", Path: "/strict?deep=1", Host: "www.example.com"}, ""},
		{"explicit http scheme", HTTPCheck{Scheme: "http"}, ""},
		{"https to a plain server", HTTPCheck{Scheme: "https"}, "http: server gave HTTP response to HTTPS client"},
		{"unsupported scheme", HTTPCheck{Scheme: "ftp"}, `unsupported scheme "ftp"`},
		{"bad path", HTTPCheck{Path: "health"}, `bad path "health"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := probeErr(NewHTTPProbe(tc.cfg), addr, 5*time.Second); got != tc.want {
				t.Errorf("probe(%+v) = %q, want %q", tc.cfg, got, tc.want)
			}
		})
	}
}

func TestHTTPProbeRefused(t *testing.T) {
	got := probeErr(NewHTTPProbe(HTTPCheck{}), closedPort(t), 5*time.Second)
	if want := "connect: connection refused"; got != want {
		t.Errorf("probe(closed port) = %q, want %q", got, want)
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	addr := addrPort(t, srv.Listener.Addr())
	p := NewHTTPProbe(HTTPCheck{})

	if got, want := probeErr(p, addr, 100*time.Millisecond), "timeout after 100ms"; got != want {
		t.Errorf("probe(hanging server) = %q, want %q", got, want)
	}
	// Called directly, the probe reports its context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p(ctx, addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("probe(hanging server) = %v, want context.DeadlineExceeded", err)
	}
}

// countConns makes srv count the connections it accepts in n.
func countConns(srv *httptest.Server, n *atomic.Int64) {
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
}

func TestHTTPProbeNewConnectionEveryTime(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	countConns(srv, &conns)
	srv.Start()
	defer srv.Close()
	addr := addrPort(t, srv.Listener.Addr())
	p := NewHTTPProbe(HTTPCheck{})
	for range 3 {
		if got := probeErr(p, addr, 5*time.Second); got != "" {
			t.Fatalf("probe = %q, want success", got)
		}
	}
	if got := conns.Load(); got != 3 {
		t.Errorf("3 probes opened %d connections, want 3", got)
	}
}

func TestHTTPProbeIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != ln.Addr().String() {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	if got := probeErr(NewHTTPProbe(HTTPCheck{}), addrPort(t, ln.Addr()), 5*time.Second); got != "" {
		t.Errorf("probe([::1]) = %q, want success", got)
	}
}

func TestHTTPSProbe(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	addr := addrPort(t, srv.Listener.Addr())

	tests := []struct {
		name string
		cfg  HTTPCheck
		want string
	}{
		{"self-signed fails verification", HTTPCheck{Scheme: "https"},
			"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"self-signed fails verification with host", HTTPCheck{Scheme: "https", Host: "example.com"},
			"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"verification off", HTTPCheck{Scheme: "https", InsecureSkipVerify: true}, ""},
		{"verification off with host and port", HTTPCheck{Scheme: "https", Host: "example.com:8443", InsecureSkipVerify: true}, ""},
		{"http to a TLS server", HTTPCheck{}, "status 400, want 200-399"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := probeErr(NewHTTPProbe(tc.cfg), addr, 5*time.Second); got != tc.want {
				t.Errorf("probe(%+v) = %q, want %q", tc.cfg, got, tc.want)
			}
		})
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := NewTCPProbe()
	if got := probeErr(p, addrPort(t, ln.Addr()), 5*time.Second); got != "" {
		t.Errorf("probe(listener) = %q, want success", got)
	}
	if got, want := probeErr(p, closedPort(t), 5*time.Second), "connect: connection refused"; got != want {
		t.Errorf("probe(closed port) = %q, want %q", got, want)
	}
}

func TestRunProbeKeepsOtherErrors(t *testing.T) {
	boom := errors.New("boom")
	p := func(context.Context, netip.AddrPort) error { return boom }
	if err := runProbe(context.Background(), p, testAddr, time.Second); err != boom {
		t.Errorf("runProbe() = %v, want %v", err, boom)
	}
	// A cancelled parent is shutdown, not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hanging := func(ctx context.Context, _ netip.AddrPort) error { <-ctx.Done(); return ctx.Err() }
	if err := runProbe(ctx, hanging, testAddr, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("runProbe(cancelled) = %v, want context.Canceled", err)
	}
}
