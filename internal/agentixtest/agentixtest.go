package agentixtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OrigRoot is the workspace root the sample audit log names in its paths.
const OrigRoot = "/home/operator/nixos-config/"

// SampleDir returns the sample workspace's directory (its audit.jsonl,
// proposals/ and policy.json), found from the module root above the
// current directory, so it works from any package's tests.
func SampleDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "agentix", "workspace-basic")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("agentixtest: no go.mod above the current directory")
		}
		dir = parent
	}
}

// SampleLines returns the lines of the sample audit log, each with its
// newline.
func SampleLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(SampleDir(t), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(b), "\n")
	return ls[:len(ls)-1]
}

// Workspace lays the sample out as a workspace in a new temp dir and returns
// the dir, with the given audit log lines (nil: the sample's).
func Workspace(t testing.TB, lines []string) string {
	t.Helper()
	ws := t.TempDir()
	pd := filepath.Join(ws, ".agentix", "proposals")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(SampleDir(t), "proposals")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pd, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if lines == nil {
		lines = SampleLines(t)
	}
	WriteLog(t, ws, lines)
	return ws
}

// WriteLog replaces the audit log of workspace ws with lines, each ended by
// exactly one newline whether or not it has one.
func WriteLog(t testing.TB, ws string, lines []string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), []byte(JoinLines(lines)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// JoinLines joins lines into log bytes, each line ended by exactly one
// newline whether or not it has one.
func JoinLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimSuffix(l, "\n"))
		b.WriteByte('\n')
	}
	return b.String()
}

// ApplyLine is an Agentix apply line, in Agentix's shape (sorted keys), for
// the workspace-relative patch rel.
func ApplyLine(rel string) string {
	return `{"action": "apply", "approval_required": true, "patch": "` + OrigRoot + rel + `", "result": "applied", "timestamp": "2026-11-25T17:00:00.000000+00:00"}`
}
