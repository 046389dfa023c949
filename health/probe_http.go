package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
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

// NewHTTPProbe returns a [Probe] that sends one request to the endpoint
// and judges the response by cfg.
//
// Every probe opens a new connection (and does a full TLS handshake, with
// no session resumption), because the question it answers is whether a
// new user could connect now, not whether an old connection still works.
// Proxy settings from the environment are ignored: the probe talks to the
// endpoint itself. A cfg that cannot work (an unknown scheme, a malformed
// path) gives a probe that always fails with the reason; configuration
// validation is expected to catch it earlier.
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
	serverName := cfg.Host
	if h, _, err := net.SplitHostPort(cfg.Host); err == nil {
		serverName = h
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{}).DialContext,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxBody,
		TLSClientConfig: &tls.Config{
			ServerName:         serverName,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
		},
	}
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	want := wantStatus(cfg.ExpectStatus)
	body := []byte(cfg.BodyContains)

	return func(ctx context.Context, addr netip.AddrPort) error {
		u := *ref
		u.Scheme = scheme
		u.Host = addr.String() // brackets IPv6 addresses
		req, err := http.NewRequestWithContext(ctx, method, "/", nil)
		if err != nil {
			return err
		}
		req.URL = &u
		req.Host = cfg.Host
		req.Header.Set("User-Agent", "gslbd-health")
		resp, err := client.Do(req)
		if err != nil {
			return shortError(err)
		}
		defer resp.Body.Close()
		if !want.match(resp.StatusCode) {
			return fmt.Errorf("status %d, want %s", resp.StatusCode, want)
		}
		if len(body) == 0 {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return fmt.Errorf("read body: %w", shortError(err))
		}
		if !bytes.Contains(b, body) {
			return fmt.Errorf("body does not contain %q", cfg.BodyContains)
		}
		return nil
	}
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
