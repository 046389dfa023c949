// Package admin serves gslbd's HTTP surface: liveness and readiness, the
// Prometheus metrics, and a read-only view of the node's state.
//
// It depends only on the small interfaces it declares; cmd wires the
// implementations. Handlers are safe for concurrent use.
package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Node is what the admin API reads from the running node.
type Node interface {
	// Ready reports whether the node should receive queries, and if not why.
	Ready() (bool, string)
	// Status returns a JSON-encodable document describing the node's view.
	Status() any
}

// Server is the admin HTTP API.
type Server struct {
	node     Node
	gatherer prometheus.Gatherer
	log      *slog.Logger
	mux      *http.ServeMux
}

// New returns the admin API over node, exposing gatherer's metrics.
func New(node Node, gatherer prometheus.Gatherer, logger *slog.Logger) *Server {
	s := &Server{node: node, gatherer: gatherer, log: logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	s.mux.HandleFunc("GET /api/v1/status", s.status)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.node.Ready()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.node.Status())
}

// writeJSON is the one place responses are encoded.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}
