package daemon

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentix/agentix-store/internal/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's Prometheus metrics.
type Metrics struct {
	Registry *prometheus.Registry

	appends      prometheus.Counter
	batchEntries prometheus.Histogram
	commitSecs   prometheus.Histogram
	commitErrs   prometheus.Counter
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	verifyFails  *prometheus.CounterVec
	rejected     prometheus.Counter
	evicted      prometheus.Counter
}

// NewMetrics creates the daemon's metrics in a fresh registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		appends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentix_log_appends_total", Help: "Entries appended to the log (durable)."}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "agentix_log_batch_entries", Help: "Entries per group-committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		commitSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "agentix_log_commit_seconds", Help: "Time to write and fsync one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		commitErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentix_log_commit_errors_total", Help: "Batches that failed to commit."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentix_http_requests_total", Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentix_http_request_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"}),
		verifyFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentix_verification_failures_total", Help: "Inputs refused because they failed verification (bad CAR blocks, bad envelopes, refused checkpoints), by route."}, []string{"route"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentix_http_unauthorized_total", Help: "Writes refused for a missing or wrong credential."}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentix_http_connections_evicted_total", Help: "Unauthenticated connections closed because their client address had too many (Limits.MaxConnsPerAddr)."}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.appends, m.batchEntries, m.commitSecs, m.commitErrs, m.requests, m.latency, m.verifyFails, m.rejected, m.evicted)
	return m
}

// OnBatch is the log's batch hook (node.OpenOptions.OnBatch).
func (m *Metrics) OnBatch(entries int, d time.Duration, err error) {
	if err != nil {
		m.commitErrs.Inc()
		return
	}
	m.appends.Add(float64(entries))
	m.batchEntries.Observe(float64(entries))
	m.commitSecs.Observe(d.Seconds())
}

// registerNode adds gauges read from the node at scrape time. Store
// statistics walk the block keys, so they are cached for 15 s.
func (m *Metrics) registerNode(n *node.Node) {
	var mu sync.Mutex
	var at time.Time
	var blocks, bytes float64
	stat := func() (float64, float64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > 15*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if st, err := n.Store.Stat(ctx); err == nil {
				blocks, bytes = float64(st.Blocks), float64(st.Bytes)
				at = time.Now()
			}
		}
		return blocks, bytes
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentix_log_size", Help: "Entries in the log's latest checkpoint."},
			func() float64 { return float64(n.Log.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentix_log_index_lag", Help: "Log entries not yet in the leaf-hash index (lookups by leaf hash scan them)."},
			func() float64 { i := n.Log.Indexed(); return float64(n.Log.Size() - i) }), // Indexed first: it never passes a later Size
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentix_store_blocks", Help: "Blocks stored."},
			func() float64 { b, _ := stat(); return b }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentix_store_bytes", Help: "Bytes of stored blocks."},
			func() float64 { _, b := stat(); return b }),
	)
}

// route names a request's path for metrics without unbounded cardinality.
func route(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/ipfs/"):
		return "ipfs"
	case strings.HasPrefix(p, "/log/tile/entries/"):
		return "log/entries"
	case strings.HasPrefix(p, "/log/tile/"):
		return "log/tile"
	case strings.HasPrefix(p, "/log/"), strings.HasPrefix(p, "/nix/"):
		parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 3)
		if len(parts) >= 2 && (parts[0] == "log" || strings.HasSuffix(parts[1], "cache-info")) {
			return parts[0] + "/" + parts[1]
		}
		return parts[0]
	case strings.HasPrefix(p, "/api/v1/"):
		parts := strings.SplitN(strings.TrimPrefix(p, "/api/v1/"), "/", 2)
		return r.Method + " api/" + parts[0]
	case p == "/healthz", p == "/metrics":
		return p[1:]
	}
	return "other"
}

// observe is the metrics middleware.
func (m *Metrics) observe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(sw, r)
		rt := route(r)
		m.requests.WithLabelValues(rt, strconv.Itoa(sw.status)).Inc()
		m.latency.WithLabelValues(rt).Observe(time.Since(start).Seconds())
		switch sw.status {
		case http.StatusUnauthorized, http.StatusForbidden:
			if r.Method != http.MethodGet {
				m.rejected.Inc()
			}
		}
		if r.Method == http.MethodPost && (sw.status == http.StatusBadRequest || sw.status == http.StatusConflict ||
			sw.status == http.StatusUnprocessableEntity || sw.status == http.StatusForbidden) {
			m.verifyFails.WithLabelValues(rt).Inc()
		}
	})
}
