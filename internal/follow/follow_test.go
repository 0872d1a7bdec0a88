package follow_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/internal/follow"
	"github.com/agentix/agentix-store/internal/node"
)

// TestWorkspaceAddedWhileRunningIsIngested: a workspace added to
// config.json while the daemon runs is followed at once, and each new line
// is ingested within 2 s of being appended.
func TestWorkspaceAddedWhileRunningIsIngested(t *testing.T) {
	dir := initNode(t, "alpha")
	d := serve(t, dir, follow.Options{RunningSystem: filepath.Join(t.TempDir(), "no-system")})
	lines := agentixtest.SampleLines(t)
	ws := agentixtest.Workspace(t, []string{}) // proposals, an empty log

	addWorkspace(t, dir, node.WorkspaceConfig{Path: ws})
	waitFor(t, 2*time.Second, "the added workspace is followed", func() bool {
		_, ok := d.detail().workspace(ws)
		return ok
	})
	for i, l := range lines[:3] {
		appendLine(t, ws, l)
		took := waitFor(t, 2*time.Second, "line "+string(rune('1'+i))+" ingested", func() bool {
			w, _ := d.detail().workspace(ws)
			return w.Lines == int64(i+1)
		})
		t.Logf("line %d ingested %v after it was appended", i+1, took)
	}
	det := d.detail()
	w, _ := det.workspace(ws)
	if det.Status != "ok" || !det.Follow.Healthy || w.Error != "" || w.Snapshot == "" {
		t.Fatalf("after three ingests: %+v", det)
	}
	if v := d.metric("agentix_follow_successes_total", `step="ingest"`); v < 3 {
		t.Fatalf("agentix_follow_successes_total{step=\"ingest\"} = %v, want ≥ 3", v)
	}
	if v := d.metric("agentix_follow_last_success_timestamp_seconds", `step="ingest"`); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("agentix_follow_last_success_timestamp_seconds{step=\"ingest\"} = %v", v)
	}

	// Removed from the config: no longer followed.
	if _, err := node.UpdateConfig(dir, func(c *node.Config) error { c.Workspaces = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the removed workspace is dropped", func() bool {
		_, ok := d.detail().workspace(ws)
		return !ok
	})
}

// TestBrokenWorkspaceDoesNotStopTheDaemon: a workspace whose audit log
// cannot be read shows up as failing in /metrics and /healthz?detail=1,
// is retried, and the other workspace is still ingested; /healthz still
// answers "ok".
func TestBrokenWorkspaceDoesNotStopTheDaemon(t *testing.T) {
	dir := initNode(t, "alpha")
	lines := agentixtest.SampleLines(t)
	good := agentixtest.Workspace(t, lines[:1])
	broken := agentixtest.Workspace(t, []string{})
	log := filepath.Join(broken, ".agentix", "audit.jsonl")
	// A directory where the log should be: it opens, but cannot be read.
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(log, 0o755); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(t.TempDir(), "removed-workspace")
	addWorkspace(t, dir, node.WorkspaceConfig{Path: good})
	addWorkspace(t, dir, node.WorkspaceConfig{Path: broken})
	addWorkspace(t, dir, node.WorkspaceConfig{Path: gone})
	d := serve(t, dir, follow.Options{RunningSystem: filepath.Join(t.TempDir(), "no-system")})

	waitFor(t, 5*time.Second, "both broken workspaces fail, and are retried", func() bool {
		det := d.detail()
		b, _ := det.workspace(broken)
		g, _ := det.workspace(gone)
		return b.Failures >= 2 && g.Failures >= 2
	})
	det := d.detail()
	b, _ := det.workspace(broken)
	g, _ := det.workspace(gone)
	if det.Status != "degraded" || det.Follow.Healthy {
		t.Fatalf("healthz detail with failing workspaces: status %q healthy %v", det.Status, det.Follow.Healthy)
	}
	if !strings.Contains(b.Error, broken) || !strings.Contains(g.Error, gone) {
		t.Fatalf("errors do not name their workspace: %q, %q", b.Error, g.Error)
	}
	if code, body := d.healthz(); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q, want 200 ok (liveness)", code, body)
	}
	if v := d.metric("agentix_follow_failures_total", `step="ingest"`); v < 4 {
		t.Fatalf("agentix_follow_failures_total{step=\"ingest\"} = %v, want ≥ 4", v)
	}
	if v := d.metric("agentix_follow_failing", `workspace="`+broken+`"`); v != 1 {
		t.Fatalf("agentix_follow_failing{workspace=%q} = %v, want 1", broken, v)
	}
	if v := d.metric("agentix_follow_failing", `workspace="`+good+`"`); v != 0 {
		t.Fatalf("agentix_follow_failing{workspace=%q} = %v, want 0", good, v)
	}
	// The good workspace is followed all along.
	appendLine(t, good, lines[1])
	waitFor(t, 2*time.Second, "the good workspace's new line ingested", func() bool {
		w, _ := d.detail().workspace(good)
		return w.Lines == 2
	})
	// Fixed: the retry ingests it and the failure clears.
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	agentixtest.WriteLog(t, broken, lines[:2])
	waitFor(t, 5*time.Second, "the repaired workspace ingested", func() bool {
		w, _ := d.detail().workspace(broken)
		return w.Lines == 2 && w.Error == ""
	})
}

// TestTamperedLogIsCountedAndFollowingGoesOn: a log rewritten so that it
// no longer continues the accepted snapshot is refused (counted, named),
// not ingested again until it changes, and appends after a repair are
// ingested.
func TestTamperedLogIsCountedAndFollowingGoesOn(t *testing.T) {
	dir := initNode(t, "alpha")
	lines := agentixtest.SampleLines(t)
	ws := agentixtest.Workspace(t, lines[:3])
	addWorkspace(t, dir, node.WorkspaceConfig{Path: ws})
	d := serve(t, dir, follow.Options{RunningSystem: filepath.Join(t.TempDir(), "no-system")})
	waitFor(t, 2*time.Second, "three lines ingested", func() bool {
		w, _ := d.detail().workspace(ws)
		return w.Lines == 3
	})
	agentixtest.WriteLog(t, ws, lines[:2]) // line 3 removed
	waitFor(t, 2*time.Second, "the truncated log refused", func() bool {
		w, _ := d.detail().workspace(ws)
		return w.Tampered == 1
	})
	w, _ := d.detail().workspace(ws)
	if !strings.Contains(w.Error, "not a continuation") || !strings.Contains(w.Error, "line 3") {
		t.Fatalf("tamper error %q does not say what and where", w.Error)
	}
	if v := d.metric("agentix_follow_tampered_total", `workspace="`+ws+`"`); v != 1 {
		t.Fatalf("agentix_follow_tampered_total = %v, want 1", v)
	}
	// Unchanged bytes are not refused again (that would record the same
	// evidence over and over); polls come every 200 ms.
	at := time.Now()
	waitFor(t, 2*time.Second, "a few polls", func() bool { return time.Since(at) > 800*time.Millisecond })
	if w, _ := d.detail().workspace(ws); w.Tampered != 1 {
		t.Fatalf("the same refused log was ingested again: tampered %d", w.Tampered)
	}
	// Restored and appended to: followed again.
	agentixtest.WriteLog(t, ws, lines[:4])
	waitFor(t, 2*time.Second, "the restored log's new line ingested", func() bool {
		w, _ := d.detail().workspace(ws)
		return w.Lines == 4 && w.Error == ""
	})
}
