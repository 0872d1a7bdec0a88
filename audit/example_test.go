package audit_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/audit"
)

// ExampleCheckWorkspace checks the safety boundary of a workspace laid out
// as Agentix writes it.
func ExampleCheckWorkspace() {
	ws, _ := os.MkdirTemp("", "ws")
	defer os.RemoveAll(ws)
	os.MkdirAll(filepath.Join(ws, ".agentix", "proposals"), 0o755)
	patch := "--- a/modules/foo.nix\n+++ b/modules/foo.nix\n@@ -1 +1 @@\n-a\n+b\n"
	os.WriteFile(filepath.Join(ws, ".agentix", "proposals", "p.patch"), []byte(patch), 0o644)
	log := `{"action": "worktree_run", "proposal_saved": "/home/op/cfg/.agentix/proposals/p.patch", "result": "ok", "source_modified": false, "timestamp": "2026-11-25T16:58:37+00:00"}
{"action": "apply", "patch": "/home/op/cfg/.agentix/proposals/p.patch", "result": "applied", "timestamp": "2026-11-25T16:59:00+00:00"}
{"action": "controller_run", "result": "ok", "requires_sudo": true, "timestamp": "2026-11-25T17:00:00+00:00"}
`
	os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), []byte(log), 0o644)

	rep, err := audit.CheckWorkspace(ws, &audit.Policy{}, audit.Inputs{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("lines:", rep.Lines, "passed:", rep.Result.Passed)
	for _, v := range rep.Result.Violations {
		fmt.Println(v.Error())
	}
	// Output:
	// lines: 3 passed: false
	// rule 3, audit line 3: agent-run event sets a forbidden flag: controller_run event has requires_sudo: true
}
