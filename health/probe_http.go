package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody is how much of a response body an HTTP probe reads when it looks
// for [HTTPCheck].BodyContains.
const maxBody = 64 << 10

// HTTPCheck configures an HTTP or HTTPS probe. The zero value probes
// "GET http://addr/" and wants a status from 200 to 399.
type HTTPCheck struct {
	// Scheme is "http" (the default when empty) or "https".
	Scheme string
	// Method is the request method; empty means GET.
	Method string
	// Path is the request path with an optional query; empty means "/".
	Path string
	// Host is sent as the Host header and, for https, as the TLS server
	// name the certificate is verified against. Empty means the address.
	Host string
	// ExpectStatus lists the acceptable status codes; empty means 200-399.
	// Redirects are not followed: a 3xx is judged as the status it is.
	ExpectStatus []int
	// BodyContains, when not empty, must occur in the first 64 KiB of the
	// response body.
	BodyContains string
	// InsecureSkipVerify turns TLS certificate verification off.
	InsecureSkipVerify bool
}

// maxHead bounds the status line and headers of a response.
const maxHead = 64 << 10

// NewHTTPProbe returns a [Probe] that sends one request to the endpoint
// and judges the response by cfg.
//
// Every probe opens a new connection (and does a full TLS handshake, with
// no session resumption), because the question it answers is whether a
// new user could connect now, not whether an old connection still works.
// The request says "Connection: close" and asks for no compression; the
// probe reads the status line and headers, and the body only when it has
// to look for [HTTPCheck].BodyContains. Proxy settings from the
// environment are ignored: the probe talks to the endpoint itself. A cfg
// that cannot work (an unknown scheme, a malformed path) gives a probe
// that always fails with the reason; configuration validation is expected
// to catch it earlier.
//
// The probe speaks HTTP/1.1 on its own connection rather than through an
// [http.Client]: the client's transport runs two goroutines and a dial
// goroutine per connection, which at thousands of probes a second cost
// more than the probes' own work. The response is still parsed by
// [http.ReadResponse].
func NewHTTPProbe(cfg HTTPCheck) Probe {
	scheme := cfg.Scheme
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return failingProbe(fmt.Errorf("unsupported scheme %q", cfg.Scheme))
	}
	method := cfg.Method
	if method == "" {
		method = http.MethodGet
	}
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	ref, err := url.ParseRequestURI(path)
	if err != nil || ref.Scheme != "" || ref.Host != "" {
		return failingProbe(fmt.Errorf("bad path %q", cfg.Path))
	}
	if !validMethod(method) || strings.ContainsAny(cfg.Host, " \r\n") {
		return failingProbe(fmt.Errorf("bad method or host %q %q", method, cfg.Host))
	}
	serverName := cfg.Host
	if h, _, err := net.SplitHostPort(cfg.Host); err == nil {
		serverName = h
	}
	var tlsConfig *tls.Config
	if scheme == "https" {
		tlsConfig = &tls.Config{ServerName: serverName, InsecureSkipVerify: cfg.InsecureSkipVerify}
	}
	// The request up to the Host header's value, and after it.
	head := []byte(method + " " + ref.RequestURI() + " HTTP/1.1\r\nHost: ")
	tail := []byte("\r\nUser-Agent: gslbd-health\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n")
	// ReadResponse needs the request only for its method (a HEAD
	// response has no body); it does not change it.
	req := &http.Request{Method: method}
	want := wantStatus(cfg.ExpectStatus)
	body := []byte(cfg.BodyContains)
	d := newDialer()

	return func(ctx context.Context, addr netip.AddrPort) error {
		tcp, err := dial(ctx, d, addr)
		if err != nil {
			return shortError(err)
		}
		var conn net.Conn = tcp
		defer func() { conn.Close() }()
		// The deadline and a cancellation both end the I/O at once; the
		// error is then the context's.
		stop := context.AfterFunc(ctx, func() { tcp.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		fail := func(err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return shortError(err)
		}
		if tlsConfig != nil {
			tc := tlsConfig
			if serverName == "" {
				tc = tlsConfig.Clone()
				tc.ServerName = addr.Addr().String()
			}
			tconn := tls.Client(tcp, tc)
			conn = tconn
			if err := tconn.HandshakeContext(ctx); err != nil {
				var rhe tls.RecordHeaderError
				if errors.As(err, &rhe) && string(rhe.RecordHeader[:]) == "HTTP/" {
					err = errors.New("http: server gave HTTP response to HTTPS client")
				}
				return fail(err)
			}
		}

		buf := bufs.Get().(*probeBuf)
		defer func() {
			buf.lim.R = nil // hold no connection in the pool
			bufs.Put(buf)
		}()
		w := append(buf.req[:0], head...)
		if cfg.Host != "" {
			w = append(w, cfg.Host...)
		} else {
			w = addr.AppendTo(w) // brackets IPv6 addresses
		}
		w = append(w, tail...)
		buf.req = w
		if _, err := conn.Write(w); err != nil {
			return fail(err)
		}
		buf.lim = io.LimitedReader{R: conn, N: maxHead + maxBody}
		buf.r.Reset(&buf.lim)
		resp, err := http.ReadResponse(&buf.r, req)
		if err != nil {
			return fail(err)
		}
		if !want.match(resp.StatusCode) {
			return fmt.Errorf("status %d, want %s", resp.StatusCode, want)
		}
		if len(body) == 0 {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return fmt.Errorf("read body: %w", fail(err))
		}
		if !bytes.Contains(b, body) {
			return fmt.Errorf("body does not contain %q", cfg.BodyContains)
		}
		return nil
	}
}

// probeBuf is the reusable memory of one HTTP probe: the request and the
// response reader.
type probeBuf struct {
	req []byte
	lim io.LimitedReader
	r   bufio.Reader
}

var bufs = sync.Pool{New: func() any {
	b := &probeBuf{req: make([]byte, 0, 256)}
	b.r = *bufio.NewReaderSize(nil, 4096)
	return b
}}

// validMethod reports whether m is an HTTP token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range []byte(m) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func failingProbe(err error) Probe {
	return func(context.Context, netip.AddrPort) error { return err }
}

// wantStatus is the set of acceptable status codes; nil means 200-399.
type wantStatus []int

func (w wantStatus) match(code int) bool {
	if len(w) == 0 {
		return code >= 200 && code <= 399
	}
	return slices.Contains(w, code)
}

// String gives "200-399", "200" or "200 or 204".
func (w wantStatus) String() string {
	if len(w) == 0 {
		return "200-399"
	}
	s := make([]string, len(w))
	for i, c := range w {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, " or ")
}
