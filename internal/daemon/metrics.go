package daemon

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentix/agentix-store/internal/follow"
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

// followCollector exports a follower's status at scrape time.
type followCollector struct {
	f                          *follow.Follower
	failures, successes, last  *prometheus.Desc
	workspaces, failing, tampr *prometheus.Desc
}

// registerFollower adds the agentix_follow_* metrics of f.
func (m *Metrics) registerFollower(f *follow.Follower) {
	m.Registry.MustRegister(&followCollector{f: f,
		failures: prometheus.NewDesc("agentix_follow_failures_total",
			"Failed steps of following the node (config, ingest, import, attest); each is retried with backoff.", []string{"step"}, nil),
		successes: prometheus.NewDesc("agentix_follow_successes_total",
			"Steps of following the node that succeeded.", []string{"step"}, nil),
		last: prometheus.NewDesc("agentix_follow_last_success_timestamp_seconds",
			"Unix time of the step's last success (0: none yet).", []string{"step"}, nil),
		workspaces: prometheus.NewDesc("agentix_follow_workspaces",
			"Workspaces followed.", nil, nil),
		failing: prometheus.NewDesc("agentix_follow_failing",
			"1 while the workspace (or, with workspace=\"\", the running system) has a current failure.", []string{"workspace"}, nil),
		tampr: prometheus.NewDesc("agentix_follow_tampered_total",
			"Ingests refused because the workspace's audit log does not continue the accepted snapshot.", []string{"workspace"}, nil),
	})
}

func (c *followCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.failures, c.successes, c.last, c.workspaces, c.failing, c.tampr} {
		ch <- d
	}
}

func (c *followCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Status()
	for _, step := range follow.Steps {
		s := st.Steps[step]
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures), step)
		ch <- prometheus.MustNewConstMetric(c.successes, prometheus.CounterValue, float64(s.Successes), step)
		var t float64
		if !s.LastSuccess.IsZero() {
			t = float64(s.LastSuccess.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, t, step)
	}
	ch <- prometheus.MustNewConstMetric(c.workspaces, prometheus.GaugeValue, float64(len(st.Workspaces)))
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for _, w := range st.Workspaces {
		ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, b(w.Error != ""), w.Path)
		ch <- prometheus.MustNewConstMetric(c.tampr, prometheus.CounterValue, float64(w.Tampered), w.Path)
	}
	ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, b(st.RunningSystem.Error != ""), "")
}
