package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the node's HTTP handler.
func Handler(n *node.Node, logger *slog.Logger) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := n.Store.GatewayHandler(reg)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/ipfs/", gw)
	mux.Handle("/log/", http.StripPrefix("/log", n.Log.Handler()))
	tok, err := node.ReadKey(n.Dir, node.TokenFile)
	if err != nil {
		return nil, err
	}
	mux.Handle("/api/v1/", api.Handler(n, tok, api.Limits{}))
	mux.Handle("GET /api/v1/attestations", attest.Handler("/api/v1/attestations", n.Attest, n.Store.Blockstore()))
	mux.Handle("GET /api/v1/attestations/", attest.Handler("/api/v1/attestations", n.Attest, n.Store.Blockstore()))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return logRequests(logger, mux), nil
}

func logRequests(logger *slog.Logger, h http.Handler) http.Handler {
	if logger == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(sw, r)
		logger.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "dur", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int)        { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Serve serves n on l until ctx is done, then shuts down gracefully (waiting
// up to 10 s for in-flight requests).
func Serve(ctx context.Context, n *node.Node, l net.Listener, logger *slog.Logger) error {
	h, err := Handler(n, logger)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
