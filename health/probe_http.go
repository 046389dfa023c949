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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// DisableReuse makes every probe open a new connection (and do a full
	// TLS handshake, with no session resumption) and say "Connection:
	// close": each probe then answers whether a new user could connect
	// now, at several times the cost. The services file's
	// reuse_connection: false.
	DisableReuse bool
}

// NewHTTPProbe returns a [Probe] that sends one request to the endpoint
// and judges the response by cfg.
//
// Run by a [Checker], the probe keeps its connection to each endpoint for
// the next probe (one connection per endpoint, used by one probe at a
// time), as Envoy's health checker does, because a new TCP connection
// (and TLS handshake) per probe costs several times the exchange itself.
// The connection is closed, and the next probe dials anew, after any
// failed probe (an error, a timeout, an unexpected status or body), after
// a response that says "Connection: close" or that was not read whole,
// when the Checker drops the endpoint or stops, and at the latest at a
// random age between 2.5 and 5 minutes, so that a new connection is made
// regularly. A kept connection that the endpoint closed while it was idle
// (the end of the connection or a reset before any byte of the response)
// is retried once on a new connection within the same timeout, as
// net/http does for idempotent requests, so it does not read as a failed
// probe; an endpoint that is really down still fails the retry, and one
// that does not answer still runs into the timeout, which no retry
// extends. With cfg.DisableReuse, and when called without a Checker,
// every probe opens a new connection and says "Connection: close".
//
// The request asks for no compression; the probe reads the status line and
// headers, and the body (at most 64 KiB of it) when it looks for
// [HTTPCheck].BodyContains or when it keeps the connection. Proxy
// settings from the environment are ignored: the probe talks to the
// endpoint itself. A cfg that cannot work (an unknown scheme, a malformed
// path) gives a probe that always fails with the reason; configuration
// validation is expected to catch it earlier.
//
// The probe speaks HTTP/1.1 on its own connection rather than through an
// [http.Client]: the client's transport runs two goroutines and a dial
// goroutine per connection, which at thousands of probes a second cost
// more than the probes' own work.
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
	p := &httpProbe{
		host:       cfg.Host,
		serverName: cfg.Host,
		head:       []byte(method + " " + ref.RequestURI() + " HTTP/1.1\r\nHost: "),
		isHead:     method == http.MethodHead,
		want:       wantStatus(cfg.ExpectStatus),
		body:       []byte(cfg.BodyContains),
		reuse:      !cfg.DisableReuse,
		d:          newDialer(),
	}
	if h, _, err := net.SplitHostPort(cfg.Host); err == nil {
		p.serverName = h
	}
	if scheme == "https" {
		p.tls = &tls.Config{ServerName: p.serverName, InsecureSkipVerify: cfg.InsecureSkipVerify}
	}
	const tail = "\r\nUser-Agent: gslbd-health\r\nAccept-Encoding: identity\r\n"
	p.tailKeep = []byte(tail + "\r\n")
	p.tailClose = []byte(tail + "Connection: close\r\n\r\n")
	return p.probe
}

// httpProbe is an HTTP probe's settings, built once.
type httpProbe struct {
	host       string // the Host header; empty: the address
	serverName string // the TLS server name; empty: the address
	// The request up to the Host header's value, and after it for a
	// connection that is kept or closed.
	head, tailKeep, tailClose []byte
	isHead                    bool
	want                      wantStatus
	body                      []byte // BodyContains
	reuse                     bool
	tls                       *tls.Config // nil for http
	d                         *net.Dialer
}

// errStopped is what a probe returns when the Checker closed its
// connection slot before it started: the group is gone.
var errStopped = errors.New("probe stopped")

func (p *httpProbe) probe(ctx context.Context, addr netip.AddrPort) error {
	var slot *connSlot
	trace, _ := ctx.Value(traceKey{}).(*probeTrace)
	if trace != nil {
		slot = trace.conns
		if p.reuse && p.tls == nil && slot != nil {
			trace.http = p // the Checker may take the connection over
		}
	}
	reuse := p.reuse && slot != nil
	if slot == nil {
		// No Checker to close the connection when ctx is done: the
		// probe's own slot, closed when ctx is done, and after it.
		slot = new(connSlot)
		defer slot.close()
		stop := context.AfterFunc(ctx, slot.close)
		defer stop()
	}
	// A kept connection from an earlier probe, or nil.
	kc, ok := slot.take(p, time.Now())
	if !ok {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errStopped
	}
	reused := kc != nil
	for {
		if kc == nil {
			var err error
			if kc, err = p.connect(ctx, slot, addr); err != nil {
				return err
			}
		}
		keep, stale, err := p.exchange(ctx, kc, addr, reuse)
		if stale && reused && ctx.Err() == nil {
			// The endpoint closed the kept connection while it was
			// idle: one more try, on a new one, within the same
			// deadline.
			slot.drop(kc)
			kc, reused = nil, false
			continue
		}
		if err == nil && trace != nil && trace.wantRTT {
			// A completed exchange: the kernel's estimate of the path
			// now includes its round trip.
			trace.srtt, trace.rttvar, trace.sampled = kernelRTT(kc.tcp)
		}
		if keep && err == nil && reuse {
			slot.put(kc)
		} else {
			slot.drop(kc)
		}
		return err
	}
}

// connect dials addr and, for https, does the TLS handshake. The new
// connection is the slot's busy one, so closing the slot interrupts it.
func (p *httpProbe) connect(ctx context.Context, slot *connSlot, addr netip.AddrPort) (*keptConn, error) {
	tcp, err := dial(ctx, p.d, addr)
	if err != nil {
		return nil, shortError(err)
	}
	if !slot.use(tcp) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, errStopped
	}
	if p.tls == nil {
		return newKeptConn(tcp, tcp, p, time.Now()), nil
	}
	tc := p.tls
	if p.serverName == "" {
		tc = p.tls.Clone()
		tc.ServerName = addr.Addr().String()
	}
	tconn := tls.Client(tcp, tc)
	if err := tconn.HandshakeContext(ctx); err != nil {
		slot.done()
		tcp.Close()
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && string(rhe.RecordHeader[:]) == "HTTP/" {
			err = errors.New("http: server gave HTTP response to HTTPS client")
		}
		return nil, failure(ctx, err)
	}
	return newKeptConn(tconn, tcp, p, time.Now()), nil
}

// exchange sends the request on kc and judges the response. keep says
// whether the connection may carry another request. stale says that the
// connection failed before any byte of a response came back (the end of
// the connection or a reset), which on a kept connection means that the
// endpoint closed it while it was idle.
func (p *httpProbe) exchange(ctx context.Context, kc *keptConn, addr netip.AddrPort, reuse bool) (keep, stale bool, err error) {
	// The deadline ends the I/O at once; the Checker's closing of the
	// slot ends it on cancellation.
	if d, ok := ctx.Deadline(); ok {
		kc.conn.SetDeadline(d)
	}
	buf := bufs.Get().(*probeBuf)
	defer func() {
		buf.r.Reset(nil) // hold no connection in the pool
		buf.rt.start(nil, nil)
		bufs.Put(buf)
	}()
	w := p.request(buf.req[:0], addr, reuse)
	buf.req = w
	if kc.raw != nil {
		buf.rt.start(kc, w)
		buf.r.Reset(&buf.rt)
	} else {
		if _, err := kc.conn.Write(w); err != nil {
			return false, closedByPeer(err), failure(ctx, err)
		}
		buf.r.Reset(kc.conn)
	}
	if _, err := buf.r.Peek(1); err != nil {
		return false, closedByPeer(err), failure(ctx, unexpectedEOF(err))
	}
	keep, err = p.judge(&buf.r, reuse, func(err error) error { return failure(ctx, err) })
	return keep && buf.r.Buffered() == 0, false, err
}

// request appends the probe's request to dst: for a connection that is
// kept (reuse) or closed after it.
func (p *httpProbe) request(dst []byte, addr netip.AddrPort, reuse bool) []byte {
	dst = append(dst, p.head...)
	if p.host != "" {
		dst = append(dst, p.host...)
	} else {
		dst = addr.AppendTo(dst) // brackets IPv6 addresses
	}
	if reuse {
		return append(dst, p.tailKeep...)
	}
	return append(dst, p.tailClose...)
}

// judge reads a response from r, which has at least its first byte, and
// judges it by the probe's settings. keep says whether the response was
// read to its end and lets the connection carry another request (bytes
// still buffered in r are the caller's to rule out). fail turns an error
// of r into the probe's.
func (p *httpProbe) judge(r *bufio.Reader, reuse bool, fail func(error) error) (keep bool, err error) {
	h, err := readHead(r, p.isHead)
	if err != nil {
		return false, fail(err)
	}
	if !p.want.match(h.status) {
		return false, fmt.Errorf("status %d, want %s", h.status, p.want)
	}
	if len(p.body) == 0 {
		if !reuse || h.close {
			return false, nil
		}
		_, complete, _ := readBody(r, h, nil)
		return complete, nil
	}
	b := bodyBufs.Get().(*[maxBody]byte)
	defer bodyBufs.Put(b)
	n, complete, err := readBody(r, h, b[:])
	if err != nil {
		return false, fmt.Errorf("read body: %w", fail(err))
	}
	if !bytes.Contains(b[:n], p.body) {
		return false, fmt.Errorf("body does not contain %q", p.body)
	}
	return complete && !h.close, nil
}

// failure is the error of a probe whose I/O failed with err: the
// context's error when it is done (the deadline passed, or the probe was
// cancelled), so that runProbe can tell a timeout, and otherwise err
// without what the operator already knows.
func failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadline is the context's, whose own timer
		// may not have fired yet.
		return context.DeadlineExceeded
	}
	return shortError(err)
}

// closedByPeer reports whether err says that the other end closed or
// reset the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// probeBuf is the reusable memory of one HTTP probe: the request and the
// response reader.
type probeBuf struct {
	req []byte
	r   bufio.Reader
	rt  rawTrip
}

var bufs = sync.Pool{New: func() any {
	b := &probeBuf{req: make([]byte, 0, 256)}
	b.r = *bufio.NewReaderSize(nil, 4096)
	b.rt.step = b.rt.io // bound once, not per probe
	return b
}}

// rawTrip is the response reader of a plain TCP connection that sends the
// request itself, from inside the wait for the answer: the request goes
// out once the goroutine is ready to be woken by the answer, so the first
// read does not run into an empty socket only to wait and read again, a
// system call saved per probe. Reads after the first are plain ones.
type rawTrip struct {
	kc   *keptConn
	req  []byte
	step func(fd uintptr) bool

	// State of one raw read.
	sent, wrote bool
	dst         []byte
	n           int
	err         error
}

// start prepares t for kc's next request req.
func (t *rawTrip) start(kc *keptConn, req []byte) {
	t.kc, t.req, t.sent, t.dst, t.err = kc, req, false, nil, nil
}

func (t *rawTrip) Read(p []byte) (int, error) {
	if t.sent {
		return t.kc.conn.Read(p)
	}
	t.sent, t.wrote, t.dst, t.n, t.err = true, false, p, 0, nil
	// The wait ends at the connection's deadline, or when the Checker
	// closes it.
	if err := t.kc.raw.Read(t.step); err != nil {
		return 0, err
	}
	t.dst = nil
	if t.err != nil {
		return 0, t.err
	}
	if t.n == 0 {
		return 0, io.EOF
	}
	return t.n, nil
}

// io is the raw read's step: the first call writes the request and asks
// to wait until the socket is readable, the next ones read.
func (t *rawTrip) io(fd uintptr) bool {
	if !t.wrote {
		t.wrote = true
		k, err := retryEINTR(func() (int, error) { return sysWrite(fd, t.req) })
		switch {
		case err != nil:
			t.err = os.NewSyscallError("write", err)
			return true
		case k < len(t.req):
			t.err = io.ErrShortWrite
			return true
		}
		return false
	}
	n, err := retryEINTR(func() (int, error) { return sysRead(fd, t.dst) })
	if err == syscall.EAGAIN {
		return false
	}
	if err != nil {
		t.err = os.NewSyscallError("read", err)
	}
	t.n = max(n, 0)
	return true
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// bodyBufs holds the memory a probe reads a body into to search it.
var bodyBufs = sync.Pool{New: func() any { return new([maxBody]byte) }}

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
