package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/store"
)

const ts = `"timestamp": "2026-11-25T17:00:00+00:00"`

// TestHostileLines appends one hostile line (line 8) to the real sample and
// expects a rule 3 violation naming line 8, from the ingester (real badger
// store) and from the store-less check agentix-verify runs alike.
func TestHostileLines(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		policy string
		reason error // nil: the boundary holds
	}{
		{"case-variant key after the flag", `{"source_modified": true, "SOURCE_MODIFIED": false, "action": "worktree_run", "result": "ok", ` + ts + `}`, "", ErrAmbiguousKey},
		{"case-variant key before the flag", `{"SOURCE_MODIFIED": true, "action": "worktree_run", "result": "ok", "source_modified": false, ` + ts + `}`, "", ErrAmbiguousKey},
		{"case-variant action", `{"Action": "controller_run", "action": "status", "result": "ok", ` + ts + `}`, "", ErrAmbiguousKey},
		{"unicode-folded key", `{"action": "worktree_run", "result": "ok", "ſource_modified": true, "source_modified": false, ` + ts + `}`, "", ErrAmbiguousKey},
		{"duplicate key", `{"action": "worktree_run", "result": "ok", "source_modified": true, "source_modified": false, ` + ts + `}`, "", ErrAmbiguousKey},
		{"duplicate key, escaped spelling", `{"action": "worktree_run", "result": "ok", "source_modified": true, "source_modifie\u0064": false, ` + ts + `}`, "", ErrAmbiguousKey},
		{"duplicate key in a nested object", `{"action": "status", "extra": {"a": 1, "a": 2}, "result": "ok", ` + ts + `}`, "", ErrAmbiguousKey},
		{"duplicate key on a human action", `{"action": "apply", "result": "skipped", "result": "applied", ` + ts + `}`, "", ErrAmbiguousKey},
		{`flag "yes"`, `{"action": "worktree_run", "result": "ok", "source_modified": "yes", ` + ts + `}`, "", ErrAgentFlag},
		{"flag null", `{"action": "worktree_run", "result": "ok", "source_modified": null, ` + ts + `}`, "", ErrAgentFlag},
		{"flag 1", `{"action": "controller_run", "result": "ok", "switched_system": 1, ` + ts + `}`, "", ErrAgentFlag},
		{`flag "false"`, `{"action": "controller_run", "requires_sudo": "false", "result": "ok", ` + ts + `}`, "", ErrAgentFlag},
		{"flag true on a line that is otherwise unparseable", `{"action": "worktree_run", "result": "ok", "source_modified": true, "timestamp": "yesterday"}`, "", ErrAgentFlag},
		{"flag true with no action", `{"result": "ok", "source_modified": true, ` + ts + `}`, "", ErrAgentFlag},
		{"policy flag null", `{"action": "worktree_run", "network": null, "result": "ok", ` + ts + `}`, `{"forbiddenAgentFlags": ["network"]}`, ErrAgentFlag},
		{"policy flag duplicate", `{"action": "worktree_run", "network": true, "network": false, "result": "ok", ` + ts + `}`, `{"forbiddenAgentFlags": ["network"]}`, ErrAmbiguousKey},
		{"policy flag case variant", `{"NETWORK": true, "action": "worktree_run", "network": false, "result": "ok", ` + ts + `}`, `{"forbiddenAgentFlags": ["network"]}`, ErrAmbiguousKey},
		// What holds.
		{"flag false", `{"action": "worktree_run", "result": "ok", "source_modified": false, ` + ts + `}`, "", nil},
		{"human rebuild with odd flags", `{"action": "rebuild", "result": "ok", "switched_system": "yes", ` + ts + `}`, "", nil},
		{"unknown keys of other case", `{"Goal_Extra": 1, "action": "status", "result": "ok", ` + ts + `}`, "", nil},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{}
			if tc.policy != "" {
				var err error
				if p, err = ParsePolicy([]byte(tc.policy)); err != nil {
					t.Fatal(err)
				}
			}
			ws := newWorkspace(t, append(sampleLines(t), tc.line))
			rep, err := CheckWorkspace(ws, p, Inputs{})
			if err != nil {
				t.Fatal(err)
			}
			n := newNode(t, false)
			n.ing.Policy = p
			ir, err := n.ing.Ingest(ctx, ws, IngestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for who, r := range map[string]*Result{"check": rep.Result, "ingest": ir.Boundary} {
				if tc.reason == nil {
					if !r.Passed {
						t.Fatalf("%s: unexpected violations: %v", who, r.Err())
					}
					continue
				}
				checkOnly(t, r, RuleSandbox, 8, tc.reason)
				if msg := r.Violations[0].Error(); !strings.Contains(msg, "audit line 8") {
					t.Fatalf("%s: violation %q does not name the line", who, msg)
				}
			}
		})
	}
}

// TestParseEntryStrict checks the decoder's own errors.
func TestParseEntryStrict(t *testing.T) {
	tests := []struct {
		in   string
		kind error
	}{
		{`{"action": "a", "action": "b", "result": "r", ` + ts + `}`, ErrAmbiguousKey},
		{`{"Action": "a", "result": "r", ` + ts + `}`, ErrAmbiguousKey},
		{`{"action": "a", "result": "r", "x": [{"k": 1, "k": 1}], ` + ts + `}`, ErrAmbiguousKey},
		{`{"action": "a", "result": "r", ` + ts + `} {}`, ErrNotJSON},
		{`{"action": "a", "result": "r", ` + ts + `,}`, ErrNotJSON},
		{"{\"action\": \"a\xff\", \"result\": \"r\", " + ts + `}`, ErrNotJSON},
		{`[1]`, ErrNotObject},
		{`{"action": 1, "result": "r", ` + ts + `}`, ErrMissingKey},
		{`{"action": "a", "result": null, ` + ts + `}`, ErrMissingKey},
		{`{"action": "a", "goal": 5, "result": "r", ` + ts + `}`, ErrBadValue},
		{`{"action": "a", "policy_violations": [1], "result": "r", ` + ts + `}`, ErrBadValue},
		{`{"action": "a", "result": "r", "source_modified": "no", ` + ts + `}`, nil},
		{`{"action": "a", "result": "", ` + ts + `}`, nil},
	}
	for _, tc := range tests {
		_, err := ParseEntry(3, []byte(tc.in))
		var le *LineError
		switch {
		case tc.kind == nil && err != nil:
			t.Errorf("ParseEntry(%s): %v", tc.in, err)
		case tc.kind != nil && (!errors.Is(err, tc.kind) || !errors.As(err, &le) || le.Line != 3):
			t.Errorf("ParseEntry(%s) = %v, want %v naming line 3", tc.in, err, tc.kind)
		}
	}
}

// outsideWorkspace makes parent/ws (the sample workspace) and parent/out, a
// directory outside it holding a copy of the sample's proposals and log.
func outsideWorkspace(t *testing.T) (ws, out string) {
	t.Helper()
	parent := t.TempDir()
	src := newWorkspace(t, nil)
	ws = filepath.Join(parent, "ws")
	out = filepath.Join(parent, "out")
	if err := os.CopyFS(ws, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(out, os.DirFS(filepath.Join(src, ".agentix"))); err != nil {
		t.Fatal(err)
	}
	return ws, out
}

// notStored fails when the bytes b were stored in st (by any ingest).
func notStored(t *testing.T, n *testNode, what string, b []byte) {
	t.Helper()
	probe := newNode(t, false)
	c, err := probe.st.Add(context.Background(), bytes.NewReader(b), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if has, err := n.st.Blockstore().Has(context.Background(), c); err != nil || has {
		t.Fatalf("%s from outside the workspace was stored (%s, %v)", what, c, err)
	}
}

func TestWorkspaceEscapes(t *testing.T) {
	ctx := context.Background()
	swap := func(t *testing.T, link, target string) {
		t.Helper()
		if err := os.RemoveAll(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("symlinked proposals dir", func(t *testing.T) {
		ws, out := outsideWorkspace(t)
		swap(t, filepath.Join(ws, ".agentix", "proposals"), filepath.Join(out, "proposals"))
		n := newNode(t, false)
		ir, err := n.ing.Ingest(ctx, ws, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := CheckWorkspace(ws, nil, Inputs{})
		if err != nil {
			t.Fatal(err)
		}
		for who, r := range map[string]*Result{"ingest": ir.Boundary, "check": rep.Result} {
			if r.Passed {
				t.Fatalf("%s: boundary held with proposals outside the workspace", who)
			}
			for _, line := range []int64{2, 3, 4} {
				checkHas(t, r, RuleProposal, line, ErrOutsideWorkspace)
			}
			for _, v := range r.Violations {
				if errors.Is(&v, ErrOutsideWorkspace) && (v.Patch == "" || !strings.Contains(v.Error(), v.Patch)) {
					t.Fatalf("%s: escape violation %q does not name the path", who, v.Error())
				}
			}
		}
		for _, p := range []string{fooPatch, barPatch} {
			b, err := os.ReadFile(filepath.Join(out, "proposals", filepath.Base(p)))
			if err != nil {
				t.Fatal(err)
			}
			notStored(t, n, p, b)
		}
	})
	for _, tc := range []struct{ name, link, target string }{
		{"symlinked audit.jsonl", ".agentix/audit.jsonl", "audit.jsonl"},
		{"symlinked .agentix dir", ".agentix", "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, out := outsideWorkspace(t)
			swap(t, filepath.Join(ws, filepath.FromSlash(tc.link)), filepath.Join(out, tc.target))
			n := newNode(t, false)
			_, err := n.ing.Ingest(ctx, ws, IngestOptions{})
			var v *Violation
			if !errors.Is(err, ErrOutsideWorkspace) || !errors.Is(err, ErrBoundaryViolated) || !errors.As(err, &v) ||
				!strings.Contains(err.Error(), AuditLogPath) {
				t.Fatalf("ingest: err = %v, want an escape violation naming %s", err, AuditLogPath)
			}
			rep, err := CheckWorkspace(ws, nil, Inputs{})
			if err != nil {
				t.Fatal(err)
			}
			checkOnly(t, rep.Result, RuleSandbox, 0, ErrOutsideWorkspace)
			if !strings.Contains(rep.Result.Violations[0].Error(), AuditLogPath) {
				t.Fatalf("check: %q does not name the path", rep.Result.Violations[0].Error())
			}
			b, err := os.ReadFile(filepath.Join(out, "audit.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			notStored(t, n, "the audit log", b)
		})
	}
	t.Run("patch path with ../", func(t *testing.T) {
		ws, out := outsideWorkspace(t)
		esc := ".agentix/proposals/../../../out/proposals/" + filepath.Base(barPatch)
		lines := append(sampleLines(t),
			runLine("worktree_run", esc, false),
			applyLine(esc))
		writeLog(t, ws, lines)
		// The same bytes are in the workspace (and stored from there);
		// change the outside copy so that storing it would show.
		outside := filepath.Join(out, "proposals", filepath.Base(barPatch))
		b, err := os.ReadFile(outside)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, "# outside\n"...)
		if err := os.WriteFile(outside, b, 0o644); err != nil {
			t.Fatal(err)
		}
		n := newNode(t, false)
		ir, err := n.ing.Ingest(ctx, ws, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := CheckWorkspace(ws, nil, Inputs{})
		if err != nil {
			t.Fatal(err)
		}
		for who, r := range map[string]*Result{"ingest": ir.Boundary, "check": rep.Result} {
			if r.Passed {
				t.Fatalf("%s: boundary held", who)
			}
			checkHas(t, r, RuleProposal, 8, ErrOutsideWorkspace)
			checkHas(t, r, RuleProposal, 9, ErrOutsideWorkspace)
			for _, v := range r.Violations {
				if !strings.Contains(v.Error(), "../") {
					t.Fatalf("%s: violation %q does not name the path", who, v.Error())
				}
			}
		}
		notStored(t, n, "the ../ patch", b)
	})
	t.Run("symlink inside the workspace is followed", func(t *testing.T) {
		ws, _ := outsideWorkspace(t)
		alias := ".agentix/proposals/alias.patch"
		if err := os.Symlink(filepath.Base(barPatch), filepath.Join(ws, filepath.FromSlash(alias))); err != nil {
			t.Fatal(err)
		}
		writeLog(t, ws, append(sampleLines(t), runLine("worktree_run", alias, false), applyLine(alias)))
		rep, err := CheckWorkspace(ws, nil, Inputs{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Result.Passed || rep.Result.Applies != 2 {
			t.Fatalf("in-workspace symlink: %+v", rep.Result)
		}
	})
}

// TestLongLine puts a line over MaxLineSize in the middle of the log: it is
// stored with the others, reported (a finding; a rule 3 violation under
// denyUnparseableLines), and the lines after it are still ingested.
func TestLongLine(t *testing.T) {
	ctx := context.Background()
	lines := sampleLines(t)
	long := `{"action": "worktree_run", "result": "ok", "source_modified": true, ` + ts + `, "z": "` + strings.Repeat("y", MaxLineSize) + `"}`
	all := append(append(append(clone(lines[:4]), long), lines[4:]...), applyLine(barPatch))
	for _, pol := range []string{"", `{"denyUnparseableLines": true}`} {
		t.Run("policy "+pol, func(t *testing.T) {
			p := &Policy{}
			if pol != "" {
				var err error
				if p, err = ParsePolicy([]byte(pol)); err != nil {
					t.Fatal(err)
				}
			}
			ws := newWorkspace(t, all)
			n := newNode(t, false)
			n.ing.Policy = p
			ir, err := n.ing.Ingest(ctx, ws, IngestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := CheckWorkspace(ws, p, Inputs{})
			if err != nil {
				t.Fatal(err)
			}
			want := NewTree()
			for _, l := range all {
				want.Append([]byte(strings.TrimSuffix(l, "\n")))
			}
			if ir.Lines != 9 || rep.Lines != 9 || ir.Root != rep.Root || !bytes.Equal(catAll(t, n.st, ir), readLog(t, ws)) ||
				rep.Root != hexRoot(want) {
				t.Fatalf("ingest %d lines root %s, check %d lines root %s, want 9 lines root %s", ir.Lines, ir.Root, rep.Lines, rep.Root, hexRoot(want))
			}
			for who, r := range map[string]*Result{"ingest": ir.Boundary, "check": rep.Result} {
				if r.Applies != 2 {
					t.Fatalf("%s: %d applies, want 2 (the line after the long one lost)", who, r.Applies)
				}
				if pol == "" {
					if !r.Passed || len(r.Findings) != 1 || r.Findings[0].Line != 5 || !strings.Contains(r.Findings[0].Message, "line 5") {
						t.Fatalf("%s: passed %v findings %+v, want one naming line 5", who, r.Passed, r.Findings)
					}
				} else {
					checkOnly(t, r, RuleSandbox, 5, ErrUnparseable)
					if !errors.Is(&r.Violations[0], ErrBoundaryViolated) || !strings.Contains(r.Violations[0].Message, ErrLineTooLong.Error()) {
						t.Fatalf("%s: %v", who, r.Violations[0].Error())
					}
				}
			}
			// Incremental: the long line as the accepted last line, then more.
			ws2 := newWorkspace(t, all[:5])
			n2 := newNode(t, false)
			n2.ing.Policy = p
			if _, err := n2.ing.Ingest(ctx, ws2, IngestOptions{VerifyPrefix: true}); err != nil {
				t.Fatal(err)
			}
			appendLog(t, ws2, all[5:]...)
			ir2, err := n2.ing.Ingest(ctx, ws2, IngestOptions{VerifyPrefix: true})
			if err != nil {
				t.Fatal(err)
			}
			if ir2.Lines != 9 || ir2.NewLines != 4 || ir2.Root != ir.Root || ir2.Boundary.Passed != ir.Boundary.Passed {
				t.Fatalf("incremental: %+v", ir2)
			}
		})
	}
}

func hexRoot(t *Tree) string { return hex.EncodeToString(t.Root()) }

// TestLineHasher: the hashes taken from the stored stream, written in any
// chunking, equal those of the lines as the reader returns them; a changed
// byte changes the root (the ingest then refuses to accept).
func TestLineHasher(t *testing.T) {
	in := []byte(strings.Join(sampleLines(t), "") + strings.Repeat("z", 3<<20) + "\n" + "tail")
	want := NewTree()
	r := NewReader(bytes.NewReader(in), 1, 0)
	var lastOff int64
	for {
		l, err := r.Next()
		if err != nil {
			break
		}
		want.AppendLeafHash(l.Leaf)
		lastOff = l.Offset
	}
	for _, chunk := range []int{1, 7, 4096, len(in)} {
		lh := newLineHasher(NewTree(), 0)
		for b := in; len(b) > 0; {
			n := min(chunk, len(b))
			lh.Write(b[:n])
			b = b[n:]
		}
		if !bytes.Equal(lh.tree.Root(), want.Root()) || lh.completed != r.Lines() || lh.lastOff != lastOff {
			t.Fatalf("chunk %d: %d lines, last at %d; want %d at %d", chunk, lh.completed, lh.lastOff, r.Lines(), lastOff)
		}
	}
	changed := bytes.Clone(in)
	changed[10] ^= 1
	lh := newLineHasher(NewTree(), 0)
	lh.Write(changed)
	if bytes.Equal(lh.tree.Root(), want.Root()) {
		t.Fatal("a changed byte kept the root")
	}
}
