// Package admin serves gslbd's HTTP surface: liveness and readiness, the
// Prometheus metrics, a view of the node's and cluster's state, and the
// operator drain API with its audit events.
//
// It depends only on the small interfaces it declares (and on drain for
// value types); cmd wires the implementations. The JSON bodies it reads
// and writes are declared in package api, with the client. Handlers are safe for
// concurrent use.
//
// # Authentication
//
// /healthz, /readyz and /metrics are open. Every /api/ endpoint takes a
// bearer token ("Authorization: Bearer <token>") from the tokens file
// (see [Tokens]) when one is configured: a read or write token to read,
// a write token to write. Without a tokens file the read endpoints are
// open (the listener binds to localhost by default) and the write API is
// off: writes answer 403 saying so, never succeed. [Config].AnonymousRead
// keeps reads open with a tokens file too.
//
// # Status page
//
// GET /status (and / redirecting to it) is an HTML page for people:
// services by site with each site's verdict, why, and the drains that
// cover it; endpoints with this node's probe; the nodes; the drains in
// force and recent events. It is rendered from html/template (every value
// escaped), embedded in the binary, uses no script and no external asset,
// and refreshes itself. Reads follow the rules above; a browser posts a
// token once to /status/login and gets a session cookie (HttpOnly,
// SameSite=Strict) that holds the token's name, an expiry and an HMAC,
// never the token.
package admin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gslbd/gslbd/admin/api"
)

// Node is what the admin API reads from the running node.
type Node interface {
	// Ready reports whether the node should receive queries, and if not why.
	Ready() (bool, string)
	// Status describes the node's and the cluster's state.
	Status() api.Status
}

// Config configures a [Server].
type Config struct {
	// Node is the running node. Required.
	Node Node
	// Drains serves the drain endpoints; nil leaves them out (404).
	Drains Drains
	// Tokens authenticate /api/ requests; nil turns the write API off
	// and leaves reads open.
	Tokens *Tokens
	// AnonymousRead leaves reads open even with Tokens set.
	AnonymousRead bool
	// Gatherer provides /metrics. Required.
	Gatherer prometheus.Gatherer
	// Logger receives refused writes and failures. Required.
	Logger *slog.Logger
}

// Server is the admin HTTP API.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	tokens atomic.Pointer[Tokens] // nil: no tokens file
	// sessionKey signs the status page's session cookies; made at start.
	sessionKey [32]byte
}

// New returns the admin API.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), sessionKey: newSessionKey()}
	s.tokens.Store(cfg.Tokens)
	s.routeStatus()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError)}))
	s.mux.HandleFunc("GET /api/v1/status", s.auth(RoleRead, s.status))
	if cfg.Drains != nil {
		s.mux.HandleFunc("GET /api/v1/drains", s.auth(RoleRead, s.listDrains))
		s.mux.HandleFunc("GET /api/v1/drains/{id}", s.auth(RoleRead, s.getDrain))
		s.mux.HandleFunc("POST /api/v1/drains", s.auth(RoleWrite, s.createDrain))
		s.mux.HandleFunc("DELETE /api/v1/drains/{id}", s.auth(RoleWrite, s.deleteDrain))
		s.mux.HandleFunc("GET /api/v1/events", s.auth(RoleRead, s.events))
	}
	return s
}

// SetTokens replaces the tokens (a reload of the tokens file); requests
// already authenticated are not affected. Safe for concurrent use.
func (s *Server) SetTokens(t *Tokens) { s.tokens.Store(t) }

// ServeHTTP implements http.Handler. Requests no endpoint matches get
// the mux's status (404, or 405 with Allow) with a JSON error body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // sets the path values h reads
		return
	}
	c := &statusCapture{header: http.Header{}}
	h.ServeHTTP(c, r)
	for _, k := range []string{"Allow", "Location"} { // 405, and the mux's path-cleaning redirects
		if v := c.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	switch c.code {
	case http.StatusMethodNotAllowed:
		writeError(w, c.code, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
	case http.StatusNotFound, 0:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
	default:
		writeError(w, c.code, http.StatusText(c.code))
	}
}

// statusCapture records the status a handler answers with and drops its
// body.
type statusCapture struct {
	header http.Header
	code   int
}

func (c *statusCapture) Header() http.Header         { return c.header }
func (c *statusCapture) Write(b []byte) (int, error) { return len(b), nil }
func (c *statusCapture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.cfg.Node.Ready()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request, _ string) {
	writeJSON(w, http.StatusOK, s.cfg.Node.Status())
}

// writeJSON is the one place responses are encoded.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.Error{Error: msg})
}
