package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleDir = "../testdata/agentix/workspace-basic"

// Patch names of the sample workspace.
const (
	fooPatch = ".agentix/proposals/20261125-165835-worktree-create-module-foo-with-template-packages.patch"
	barPatch = ".agentix/proposals/20261125-165837-worktree-create-module-bar-with-template-packages.patch"
	origRoot = "/home/operator/nixos-config/"
)

// sampleLines returns the lines of the sample audit log, each with its
// newline.
func sampleLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sampleDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(b), "\n")
	return ls[:len(ls)-1]
}

// newWorkspace lays the sample out as a workspace in a temp dir, with the
// given audit log lines (nil: the sample's).
func newWorkspace(t testing.TB, lines []string) string {
	t.Helper()
	ws := t.TempDir()
	pd := filepath.Join(ws, ".agentix", "proposals")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(sampleDir, "proposals"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sampleDir, "proposals", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pd, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if lines == nil {
		lines = sampleLines(t)
	}
	writeLog(t, ws, lines)
	return ws
}

func writeLog(t testing.TB, ws string, lines []string) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteByte('\n')
		}
	}
	if err := os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendLog(t testing.TB, ws string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(ws, ".agentix", "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(strings.TrimSuffix(l, "\n") + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func writePatch(t testing.TB, ws, rel string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(ws, filepath.FromSlash(rel)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Line builders in Agentix's shape (sorted keys).
func applyLine(rel string) string {
	return `{"action": "apply", "approval_required": true, "patch": "` + origRoot + rel + `", "result": "applied", "timestamp": "2026-11-25T17:00:00.000000+00:00"}`
}

func runLine(action, rel string, sourceModified bool) string {
	sm := "false"
	if sourceModified {
		sm = "true"
	}
	return `{"action": "` + action + `", "error": null, "goal": "g", "mode": "worktree", "passed": true, "path": "/home/operator/nixos-config", "proposal_saved": "` + origRoot + rel + `", "result": "ok", "source_modified": ` + sm + `, "timestamp": "2026-11-25T16:59:00.000000+00:00"}`
}
