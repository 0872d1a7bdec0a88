package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/internal/agentixtest"
)

const sampleDir = "../testdata/agentix/workspace-basic"

// Patch names of the sample workspace.
const (
	fooPatch = ".agentix/proposals/20261125-165835-worktree-create-module-foo-with-template-packages.patch"
	barPatch = ".agentix/proposals/20261125-165837-worktree-create-module-bar-with-template-packages.patch"
	origRoot = agentixtest.OrigRoot
)

// The sample workspace, shared with verify's tests.
var (
	sampleLines  = agentixtest.SampleLines
	newWorkspace = agentixtest.Workspace
	writeLog     = agentixtest.WriteLog
	applyLine    = agentixtest.ApplyLine
)

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

// runLine is a controller or worktree run line in Agentix's shape (sorted
// keys).
func runLine(action, rel string, sourceModified bool) string {
	sm := "false"
	if sourceModified {
		sm = "true"
	}
	return `{"action": "` + action + `", "error": null, "goal": "g", "mode": "worktree", "passed": true, "path": "/home/operator/nixos-config", "proposal_saved": "` + origRoot + rel + `", "result": "ok", "source_modified": ` + sm + `, "timestamp": "2026-11-25T16:59:00.000000+00:00"}`
}
