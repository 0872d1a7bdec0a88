package audit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// hostileSeeds are lines two JSON readers could read differently:
// duplicate and case-variant keys, flags of the wrong type.
var hostileSeeds = []string{
	`{"source_modified": true, "SOURCE_MODIFIED": false, "action": "worktree_run", "result": "ok", "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"SOURCE_MODIFIED": true, "action": "worktree_run", "result": "ok", "source_modified": false, "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "source_modified": true, "source_modified": false, "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "source_modified": true, "source_modifie\u0064": false, "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "ſource_modified": true, "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"Action": "apply", "action": "status", "result": "ok", "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "status", "x": {"a": 1, "a": 2}, "result": "ok", "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "source_modified": "yes", "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "source_modified": null, "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "switched_system": 1, "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "requires_sudo": "false", "result": "ok", "timestamp": "2026-11-25T17:00:00+00:00"}`,
	`{"action": "worktree_run", "result": "ok", "source_modified": true, "timestamp": "yesterday"}`,
}

// FuzzParseEntry checks ParseEntry against the strict decoder's own
// reading of the line: it accepts a line only when the line is one JSON
// object that github.com/go-json-experiment/json decodes (so no duplicate
// names, valid UTF-8) with no key that is a case variant of a key it reads,
// and then every field it returns is what that decoder reads at the exact
// key. A line it calls ambiguous really has a duplicate or case-variant key.
func FuzzParseEntry(f *testing.F) {
	for _, l := range sampleLines(f) {
		f.Add([]byte(strings.TrimSuffix(l, "\n")))
	}
	for _, l := range hostileSeeds {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ParseEntry(1, in)
		var m map[string]jsontext.Value
		merr := json.Unmarshal(in, &m)
		if errors.Is(err, ErrAmbiguousKey) {
			if merr == nil {
				variant := false
				for k := range m {
					if _, ok := caseVariant(k, entryKeys); ok {
						variant = true
					}
				}
				if !variant {
					t.Fatalf("%q called ambiguous, but decodes to %v", in, m)
				}
			}
			return
		}
		if err != nil && !errors.Is(err, ErrMissingKey) && !errors.Is(err, ErrBadValue) {
			if merr == nil && m != nil {
				t.Fatalf("%q refused (%v), but it is a JSON object", in, err)
			}
			return
		}
		if merr != nil || m == nil {
			t.Fatalf("%q accepted (%v), the strict decoder says %v", in, err, merr)
		}
		str := func(k string) string {
			var s string
			if v, ok := m[k]; ok {
				json.Unmarshal(v, &s)
			}
			return s
		}
		if err == nil && (e.Action != str("action") || e.Timestamp != str("timestamp") || e.Result != str("result")) {
			t.Fatalf("%q: entry %+v disagrees with %v", in, e, m)
		}
		for _, k := range BuiltinForbiddenAgentFlags {
			v, ok := e.Member(k)
			mv, mok := m[k]
			if ok != mok || !bytes.Equal(v, mv) {
				t.Fatalf("%q: member %s = %s (%v), decoder %s (%v)", in, k, v, ok, mv, mok)
			}
		}
	})
}

// FuzzParsePolicy checks that a policy is accepted only as one strict JSON
// object and that failures are typed.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"approvers": {"threshold": 2, "keys": ["a", "b", "c"]}, "forbiddenAgentFlags": ["network"], "denyUnparseableLines": true, "denyMissingPatches": true}`))
	f.Add([]byte(`{"denyUnparseableLines": true, "denyUnparseableLines": false}`))
	f.Add([]byte(`{"DenyUnparseableLines": true}`))
	f.Add([]byte(`{"approvers": {"threshold": 1, "keys": ["a"], "Threshold": 2}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePolicy(in)
		if err != nil {
			if !errors.Is(err, ErrBadPolicy) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !jsontext.Value(in).IsValid() {
			t.Fatalf("%q accepted but not strict JSON", in)
		}
		if !p.SingleOperator() && (p.Approvers.Threshold < 1 || p.Approvers.Threshold > len(p.Approvers.Keys)) {
			t.Fatalf("%q: threshold %d of %d keys", in, p.Approvers.Threshold, len(p.Approvers.Keys))
		}
	})
}

// FuzzReader checks that the reader never loses or invents bytes: the lines
// it returns plus the pending tail are exactly the input, every line is
// either parsed or carries a *LineError naming it.
func FuzzReader(f *testing.F) {
	for _, l := range sampleLines(f) {
		f.Add([]byte(l))
	}
	f.Add([]byte("{}\n\n[]\nnot json\n{\"action\": \"apply\"}"))
	f.Add([]byte(`{"action": "apply", "result": "applied", "source_modified": "x", "timestamp": "2026-11-25T16:58:35Z"}` + "\n"))
	for _, l := range hostileSeeds {
		f.Add([]byte(l + "\n"))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 1, 0)
		var out []byte
		var n int64
		for {
			l, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			if l.Number != n || l.Offset != int64(len(out)) || bytes.IndexByte(l.Raw, '\n') >= 0 {
				t.Fatalf("line %d: number %d offset %d", n, l.Number, l.Offset)
			}
			var le *LineError
			if l.Err != nil && (!errors.As(l.Err, &le) || le.Line != n) {
				t.Fatalf("line %d: error %v does not name the line", n, l.Err)
			}
			if l.Err == nil && (l.Entry.Action == "" || l.Entry.Timestamp == "") {
				t.Fatalf("line %d parsed without action/timestamp", n)
			}
			if l.Size != int64(len(l.Raw)) || !bytes.Equal(l.Leaf, LeafHash(l.Raw)) {
				t.Fatalf("line %d: size %d leaf %x for %d bytes", n, l.Size, l.Leaf, len(l.Raw))
			}
			out = append(append(out, l.Raw...), '\n')
		}
		out = append(out, r.Pending()...)
		if !bytes.Equal(out, in) {
			t.Fatalf("bytes changed: %q -> %q", in, out)
		}
	})
}

// FuzzParseDiff checks that the diff parser never panics, returns either
// changes or a typed error, and never returns an empty path.
func FuzzParseDiff(f *testing.F) {
	ents, _ := os.ReadDir(filepath.Join(sampleDir, "proposals"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sampleDir, "proposals", e.Name()))
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("diff --git \"a/x\\ty\" b/z\nrename from x\n"))
	f.Add([]byte("--- a/f\n+++ b/f\n@@ -1,2 +1 @@\n-a\n-b\n+c\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ch, err := ParseDiff(in)
		if err != nil {
			var de *DiffError
			if !errors.As(err, &de) || !(errors.Is(err, ErrBadDiff) || errors.Is(err, ErrNotDiff)) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(ch) == 0 {
			t.Fatal("no changes and no error")
		}
		for _, c := range ch {
			if c.Path() == "" || c.Op == "" {
				t.Fatalf("change without path or op: %+v", c)
			}
		}
	})
}
