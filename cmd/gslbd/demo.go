package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// DemoConfig makes a node serve stand-in service endpoints itself, so that
// the bundled demo shows failover on one machine with nothing else running.
// Production configurations leave it out.
type DemoConfig struct {
	// Endpoints are "host:port" addresses; each serves GET /healthz (200
	// "ok", or 503 once failed), POST /fail and POST /recover.
	Endpoints []string `yaml:"endpoints"`
}

// demoEndpoint is one stand-in service endpoint.
type demoEndpoint struct {
	addr   string
	failed atomic.Bool
	ln     net.Listener
	srv    *http.Server
}

func listenDemoEndpoints(cfg DemoConfig) ([]*demoEndpoint, error) {
	var out []*demoEndpoint
	for _, addr := range cfg.Endpoints {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, e := range out {
				e.ln.Close()
			}
			return nil, fmt.Errorf("demo endpoint: %w", err)
		}
		e := &demoEndpoint{addr: ln.Addr().String(), ln: ln}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			if e.failed.Load() {
				http.Error(w, "failed", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		mux.HandleFunc("POST /fail", func(w http.ResponseWriter, _ *http.Request) {
			e.failed.Store(true)
			fmt.Fprintf(w, "%s now fails its health check\n", e.addr)
		})
		mux.HandleFunc("POST /recover", func(w http.ResponseWriter, _ *http.Request) {
			e.failed.Store(false)
			fmt.Fprintf(w, "%s is healthy again\n", e.addr)
		})
		mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "demo endpoint %s (failed=%v)\n", e.addr, e.failed.Load())
		})
		e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		out = append(out, e)
	}
	return out, nil
}

// serve runs the endpoint until ctx is done.
func (e *demoEndpoint) serve(ctx context.Context, logger *slog.Logger) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.srv.Shutdown(sctx)
	}()
	logger.Info("demo endpoint serving", "addr", e.addr)
	if err := e.srv.Serve(e.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demo endpoint %s: %w", e.addr, err)
	}
	return nil
}
