package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/follow"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/kv"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the daemon.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics // nil: a fresh set
	Limits  Limits
	API     api.Limits
	// Follow makes Serve run a follower (package follow) over the node's
	// workspaces and running system, with FollowOptions, stopped before
	// Serve returns.
	Follow        bool
	FollowOptions follow.Options
	// Follower, if set, is reported by /metrics and /healthz?detail=1
	// (Serve sets it when Follow is).
	Follower *follow.Follower
}

// Handler returns the node's HTTP handler.
func Handler(n *node.Node, o Options) (http.Handler, error) {
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	o.Limits.defaults()
	m := o.Metrics
	m.registerNode(n)
	if o.Follower != nil {
		m.registerFollower(o.Follower)
	}
	gw, err := n.Store.GatewayHandler(m.Registry)
	if err != nil {
		return nil, err
	}
	tok, err := node.ReadKey(n.Dir, node.TokenFile)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("detail") {
			healthDetail(w, o.Follower)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/ipfs/", gw)
	mux.Handle("/log/", http.StripPrefix("/log", n.Log.Handler()))
	// Operators (the trust policy's approver and node keys) may sign
	// writes instead of presenting the token.
	if o.API.Operators == nil {
		pol, err := attest.LoadPolicy(filepath.Join(n.Dir, node.TrustPolicyFile))
		if err != nil {
			return nil, fmt.Errorf("trust policy: %w", err)
		}
		var ops []*attest.Verifier
		if ks := pol.NodeKeySet(); ks != nil {
			ops = append(ops, ks.List()...)
		}
		if ks := pol.ApproverKeySet(); ks != nil {
			ops = append(ops, ks.List()...)
		}
		o.API.Operators = attest.NewKeySet(ops...)
	}
	if o.API.OnAuthenticated == nil {
		// Exempts the connection from the per-address bound (Serve).
		o.API.OnAuthenticated = authenticated
	}
	mux.Handle("/api/v1/", api.Handler(n, tok, o.API))
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	nixKey, err := node.ReadKey(n.Dir, node.NixKeyFile)
	if err != nil {
		return nil, err
	}
	sk, err := signature.LoadSecretKey(nixKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node.NixKeyFile, err)
	}
	cache, err := closure.NewCacheHandler(n.Store, n.DB, sk, closure.CacheOptions{Compression: n.Config.NixCompression})
	if err != nil {
		return nil, err
	}
	mux.Handle("/nix/", http.StripPrefix("/nix", cache))
	// A request carrying the node's bearer token exempts its connection
	// from the per-address bound before it queues for a slot, so an honest
	// client's many connections are never evicted while they wait.
	token := []byte(tok)
	return preauth(token, bound(o.Limits, m.observe(logRequests(o.Logger, mux)))), nil
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
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Flush() { http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Serve serves n on l until ctx is done, then shuts down gracefully: it
// stops accepting, waits up to 30 s for in-flight requests (an append is
// answered only once durable), stops the follower (o.Follow), and returns;
// the caller then closes the node.
// startupSettle is how long after start Serve returns the startup's garbage
// to the operating system.
const startupSettle = 3 * time.Second

func Serve(ctx context.Context, n *node.Node, l net.Listener, o Options) error {
	o.Limits.defaults()
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Follow {
		if o.FollowOptions.Logger == nil {
			o.FollowOptions.Logger = o.Logger
		}
		f, err := follow.Start(ctx, n, o.FollowOptions)
		if err != nil {
			return fmt.Errorf("follow: %w", err)
		}
		// Stopped before the caller closes the node.
		defer f.Stop()
		o.Follower = f
	}
	h, err := Handler(n, o)
	if err != nil {
		return err
	}
	tr := newConnTracker(o.Limits.MaxConnsPerAddr)
	tr.onEvict = o.Metrics.evicted.Inc
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       tr.connContext,
		ConnState:         tr.connState,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	// Badger keeps every value-log file mapped; drop the finished ones'
	// pages from this process now and then so a long-running daemon's
	// resident set stays flat (the data stays in the page cache and on disk).
	stopRelease := make(chan struct{})
	defer close(stopRelease)
	go func() {
		// Often: compactions make tables resident in bursts (kv.ReleaseLogPages).
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		// Once the node has settled, give back what starting it left
		// behind (key generation on a first run, the log's recovery, the
		// follower's first pass): an idle daemon otherwise keeps that
		// garbage resident until its next collection.
		settled := time.After(startupSettle)
		for {
			select {
			case <-stopRelease:
				return
			case <-settled:
				debug.FreeOSMemory()
			case <-t.C:
				if err := kv.ReleaseLogPages(n.DB); err != nil && o.Logger != nil {
					o.Logger.Debug("release value-log pages", "err", err)
				}
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// healthDetail answers GET /healthz?detail=1: a JSON object with "status"
// ("ok", or "degraded" while a followed workspace or the running system
// has a current failure) and, when the daemon follows its node, "follow"
// (follow.Status). It is 200 either way: the daemon itself is alive.
func healthDetail(w http.ResponseWriter, f *follow.Follower) {
	out := struct {
		Status string         `json:"status"`
		Follow *follow.Status `json:"follow,omitempty"`
	}{Status: "ok"}
	if f != nil {
		st := f.Status()
		out.Follow = &st
		if !st.Healthy {
			out.Status = "degraded"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.MarshalIndent(out, "", "  ")
	w.Write(append(b, '\n'))
}

// preauth marks the connection of a request that carries the node's
// bearer token as authenticated (exempt from the per-address bound) as soon
// as its headers are read; the API still checks every write itself.
func preauth(token []byte, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if api.Authorized(r, token) {
			authenticated(r)
		}
		h.ServeHTTP(w, r)
	})
}
