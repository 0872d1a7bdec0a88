package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
)

const ts = `"timestamp": "2026-11-25T17:00:00+00:00"`

// TestAuditLogAgreesWithIngest runs `agentix-verify audit-log` and a real
// ingest (badger store) over the same hostile workspaces: both must give the
// same verdict and the same violations (rule, line, reason).
func TestAuditLogAgreesWithIngest(t *testing.T) {
	sample := agentixtest.SampleLines(t)
	hostile := func(l string) func(t *testing.T) string {
		return func(t *testing.T) string { return agentixtest.Workspace(t, append(sample, l)) }
	}
	escape := func(link, target string) func(t *testing.T) string {
		return func(t *testing.T) string {
			ws := agentixtest.Workspace(t, nil)
			out := t.TempDir()
			if err := os.CopyFS(out, os.DirFS(filepath.Join(ws, ".agentix"))); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(ws, filepath.FromSlash(link))
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(out, target), p); err != nil {
				t.Fatal(err)
			}
			return ws
		}
	}
	long := `{"action": "status", "result": "ok", ` + ts + `, "z": "` + strings.Repeat("y", audit.MaxLineSize) + `"}`
	tests := []struct {
		name     string
		ws       func(t *testing.T) string
		boundary string
		want     string // in the CLI output
	}{
		{"case-variant key", hostile(`{"source_modified": true, "SOURCE_MODIFIED": false, "action": "worktree_run", "result": "ok", ` + ts + `}`), "", "audit line 8"},
		{"duplicate key", hostile(`{"action": "worktree_run", "result": "ok", "source_modified": true, "source_modified": false, ` + ts + `}`), "", "audit line 8"},
		{`flag "yes"`, hostile(`{"action": "worktree_run", "result": "ok", "source_modified": "yes", ` + ts + `}`), "", "audit line 8"},
		{"flag null", hostile(`{"action": "worktree_run", "result": "ok", "source_modified": null, ` + ts + `}`), "", "audit line 8"},
		{"flag 1", hostile(`{"action": "worktree_run", "result": "ok", "source_modified": 1, ` + ts + `}`), "", "audit line 8"},
		{`flag "false"`, hostile(`{"action": "worktree_run", "result": "ok", "source_modified": "false", ` + ts + `}`), "", "audit line 8"},
		{"patch path with ../", hostile(agentixtest.ApplyLine(".agentix/proposals/../../outside.patch")), "", "../outside.patch"},
		{"symlinked proposals dir", escape(".agentix/proposals", "proposals"), "", "path leads out of the workspace"},
		{"symlinked audit.jsonl", escape(".agentix/audit.jsonl", "audit.jsonl"), "", audit.AuditLogPath},
		{"over-long line, denied", hostile(long), `{"denyUnparseableLines": true}`, "audit line 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := tc.ws(t)
			args := []string{"--json", "audit-log", ws}
			var pol *audit.Policy
			if tc.boundary != "" {
				bf := filepath.Join(t.TempDir(), "boundary.json")
				if err := os.WriteFile(bf, []byte(tc.boundary), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--boundary", bf)
				var err error
				if pol, err = audit.LoadPolicy(bf); err != nil {
					t.Fatal(err)
				}
			}
			root := newRoot()
			root.SetArgs(args)
			var out bytes.Buffer
			root.SetOut(&out)
			err := root.ExecuteContext(context.Background())
			if code := exitCode(err); code != exitFailed {
				t.Fatalf("agentix-verify %v: exit %d, want %d (violated): %v\n%s", args, code, exitFailed, err, out.String())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("agentix-verify: %q does not name %q", err, tc.want)
			}
			var rep audit.CheckReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("report: %v\n%s", err, out.String())
			}

			db, err := kv.Open(t.TempDir(), kv.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ing := audit.NewIngester(store.New(db, store.Options{}), db)
			ing.Policy = pol
			ir, ierr := ing.Ingest(context.Background(), ws, audit.IngestOptions{})
			var ingest []audit.Violation
			switch {
			case ierr == nil:
				if ir.Boundary.Passed {
					t.Fatal("ingest: boundary held")
				}
				ingest = ir.Boundary.Violations
			default:
				v, ok := ierr.(*audit.Violation)
				if !ok {
					t.Fatalf("ingest: %v", ierr)
				}
				ingest = []audit.Violation{*v}
			}
			if len(ingest) != len(rep.Result.Violations) {
				t.Fatalf("ingest %d violations %v, agentix-verify %d %v", len(ingest), ingest, len(rep.Result.Violations), rep.Result.Violations)
			}
			for i, v := range ingest {
				c := rep.Result.Violations[i]
				if v.Rule != c.Rule || v.Line != c.Line || v.Patch != c.Patch || v.Message != c.Message {
					t.Errorf("violation %d: ingest %q, agentix-verify %q", i, v.Error(), c.Error())
				}
			}
		})
	}
}
