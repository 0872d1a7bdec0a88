package follow_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/daemon"
	"github.com/agentix/agentix-store/internal/follow"
	"github.com/agentix/agentix-store/internal/node"
)

// testDaemon is the real daemon (daemon.Serve, following its node) over a
// real node in t.TempDir(), on a loopback listener.
type testDaemon struct {
	t    *testing.T
	dir  string
	n    *node.Node
	url  string
	stop func()
}

// tlog is a slog handler's writer that logs to t until the test ends.
type tlog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func initNode(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := node.Init(dir, node.InitOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serve opens dir and runs daemon.Serve over it with fo until the test
// ends (or stop is called).
func serve(t *testing.T, dir string, fo follow.Options) *testDaemon {
	t.Helper()
	n, err := node.Open(dir, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &tlog{t: t}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if fo.Poll == 0 {
		fo.Poll = 200 * time.Millisecond
	}
	if fo.MinBackoff == 0 {
		fo.MinBackoff = 100 * time.Millisecond
	}
	if fo.MaxBackoff == 0 {
		fo.MaxBackoff = 400 * time.Millisecond
	}
	if fo.ProfilesDir == "" {
		fo.ProfilesDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Serve(ctx, n, l, daemon.Options{Logger: logger, Follow: true, FollowOptions: fo})
	}()
	td := &testDaemon{t: t, dir: dir, n: n, url: "http://" + l.Addr().String()}
	var once sync.Once
	td.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon.Serve: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("daemon did not stop within 60 s")
			}
			if err := n.Close(); err != nil {
				t.Errorf("close node: %v", err)
			}
			w.mu.Lock()
			w.done = true
			w.mu.Unlock()
		})
	}
	t.Cleanup(td.stop)
	return td
}

// detail is GET /healthz?detail=1.
type detail struct {
	Status string        `json:"status"`
	Follow follow.Status `json:"follow"`
}

func (d *testDaemon) detail() detail {
	d.t.Helper()
	resp, err := http.Get(d.url + "/healthz?detail=1")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out detail
	if resp.StatusCode != 200 {
		d.t.Fatalf("/healthz?detail=1: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		d.t.Fatalf("/healthz?detail=1: %v", err)
	}
	return out
}

// healthz is the plain liveness answer.
func (d *testDaemon) healthz() (int, string) {
	d.t.Helper()
	resp, err := http.Get(d.url + "/healthz")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample name{labels} in /metrics (-1:
// absent). labels is the exact label text, e.g. `step="ingest"`.
func (d *testDaemon) metric(name, labels string) float64 {
	d.t.Helper()
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, want+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				d.t.Fatalf("metric %s: %q", want, line)
			}
			return v
		}
	}
	return -1
}

// workspace returns the status of workspace ws (ok false if not followed).
func (d detail) workspace(ws string) (follow.WorkspaceStatus, bool) {
	for _, w := range d.Follow.Workspaces {
		if w.Path == ws {
			return w, true
		}
	}
	return follow.WorkspaceStatus{}, false
}

// waitFor polls cond every 20 ms until it holds or the deadline passes;
// it returns how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appendLine(t *testing.T, ws, line string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(ws, ".agentix", "audit.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.TrimSuffix(line, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func addWorkspace(t *testing.T, dir string, w node.WorkspaceConfig) {
	t.Helper()
	if _, err := node.UpdateConfig(dir, func(c *node.Config) error {
		c.Workspaces = append(c.Workspaces, w)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// runningConfigs returns the running-config/v2 predicates the node
// published, in log order.
func (d *testDaemon) runningConfigs() []attest.RunningConfigV2Predicate {
	d.t.Helper()
	recs, err := d.n.Attest.Search(attest.Query{PredicateType: attest.PredicateRunningConfigV2})
	if err != nil {
		d.t.Fatal(err)
	}
	var out []attest.RunningConfigV2Predicate
	for _, r := range recs {
		var p attest.RunningConfigV2Predicate
		if err := d.n.Predicate(context.Background(), r.ID, &p); err != nil {
			d.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}
