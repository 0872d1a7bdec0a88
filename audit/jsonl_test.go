package audit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t *testing.T, s string) ([]Line, []byte) {
	t.Helper()
	r := NewReader(strings.NewReader(s), 1, 0)
	var out []Line
	for {
		l, err := r.Next()
		if err == io.EOF {
			return out, r.Pending()
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Raw = append([]byte(nil), l.Raw...)
		out = append(out, l)
	}
}

func TestReaderSample(t *testing.T) {
	lines, pending := readAll(t, strings.Join(sampleLines(t), ""))
	if len(lines) != 7 || len(pending) != 0 {
		t.Fatalf("got %d lines, %d pending bytes; want 7, 0", len(lines), len(pending))
	}
	want := []string{"controller_run", "controller_run", "apply", "worktree_run", "propose", "status", "doctor"}
	var off int64
	for i, l := range lines {
		if l.Err != nil {
			t.Errorf("line %d: %v", i+1, l.Err)
		}
		if l.Entry.Action != want[i] || l.Number != int64(i+1) || l.Offset != off {
			t.Errorf("line %d: action %q number %d offset %d; want %q %d %d", i+1, l.Entry.Action, l.Number, l.Offset, want[i], i+1, off)
		}
		off = l.End()
	}
	if ps := lines[1].Entry.ProposalSaved; ps == nil || !strings.HasSuffix(*ps, "foo-with-template-packages.patch") {
		t.Errorf("line 2 proposal_saved = %v", ps)
	}
	if lines[0].Entry.ProposalSaved != nil {
		t.Errorf("line 1: null proposal_saved decoded as %q", *lines[0].Entry.ProposalSaved)
	}
	if sm := lines[3].Entry.SourceModified; sm == nil || *sm {
		t.Errorf("line 4 source_modified = %v", sm)
	}
	if got := lines[4].Entry.PolicyViolations; len(got) != 3 || got[0] != "deny_sudo" {
		t.Errorf("line 5 policy_violations = %v", got)
	}
}

func TestReaderCases(t *testing.T) {
	long := `{"action": "x", "result": "ok", "timestamp": "2026-11-25T16:58:34+00:00", "z": "` + strings.Repeat("y", 3<<20) + `"}`
	tests := []struct {
		name    string
		in      string
		lines   int
		pending string
		errs    map[int]error // 1-based line -> expected error kind
	}{
		{"empty", "", 0, "", nil},
		{"partial last line", `{"a":1}` + "\n" + `{"action": "st`, 1, `{"action": "st`, map[int]error{1: ErrMissingKey}},
		{"blank line kept", "\n", 1, "", map[int]error{1: ErrNotJSON}},
		{"garbage kept", "not json\n", 1, "", map[int]error{1: ErrNotJSON}},
		{"array", "[1,2]\n", 1, "", map[int]error{1: ErrNotObject}},
		{"truncated object", `{"action": "apply"` + "\n", 1, "", map[int]error{1: ErrNotJSON}},
		{"no action", `{"result": "ok", "timestamp": "2026-11-25T16:58:34+00:00"}` + "\n", 1, "", map[int]error{1: ErrMissingKey}},
		{"no result", `{"action": "x", "timestamp": "2026-11-25T16:58:34+00:00"}` + "\n", 1, "", map[int]error{1: ErrMissingKey}},
		{"empty result ok", `{"action": "x", "result": "", "timestamp": "2026-11-25T16:58:34+00:00"}` + "\n", 1, "", nil},
		{"bad timestamp", `{"action": "x", "result": "ok", "timestamp": "yesterday"}` + "\n", 1, "", map[int]error{1: ErrBadValue}},
		{"wrong type", `{"action": "apply", "goal": 5, "result": "ok", "timestamp": "2026-11-25T16:58:34+00:00"}` + "\n", 1, "", map[int]error{1: ErrBadValue}},
		{"flag of the wrong type is the evaluator's", `{"action": "apply", "result": "ok", "source_modified": "no", "timestamp": "2026-11-25T16:58:34+00:00"}` + "\n", 1, "", nil},
		{"unknown keys and action", `{"action": "teleport", "flux": [1,{"a":null}], "result": "maybe", "timestamp": "2026-11-25T16:58:34.1+00:00"}` + "\n", 1, "", nil},
		{"long line", long + "\n" + "x\n", 2, "", map[int]error{2: ErrNotJSON}},
		{"crlf is part of the line", "{\"action\": \"x\", \"result\": \"ok\", \"timestamp\": \"2026-11-25T16:58:34+00:00\"}\r\n", 1, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines, pending := readAll(t, tc.in)
			if len(lines) != tc.lines || string(pending) != tc.pending {
				t.Fatalf("got %d lines, pending %q; want %d, %q", len(lines), pending, tc.lines, tc.pending)
			}
			var total int
			for _, l := range lines {
				total += len(l.Raw) + 1
				want := tc.errs[int(l.Number)]
				if want == nil && l.Err != nil {
					t.Errorf("line %d: unexpected error %v", l.Number, l.Err)
				}
				if want != nil && !errors.Is(l.Err, want) {
					t.Errorf("line %d: error %v, want %v", l.Number, l.Err, want)
				}
				var le *LineError
				if l.Err != nil && (!errors.As(l.Err, &le) || le.Line != l.Number) {
					t.Errorf("line %d: error %v does not name the line", l.Number, l.Err)
				}
			}
			if total+len(pending) != len(tc.in) {
				t.Errorf("bytes not preserved: %d lines+newlines + %d pending != %d input", total, len(pending), len(tc.in))
			}
		})
	}
}

// TestReaderLineTooLong: an over-long line is returned with ErrLineTooLong,
// its size and leaf hash those of the whole line, and reading goes on.
func TestReaderLineTooLong(t *testing.T) {
	for _, size := range []int{MaxLineSize + 1, MaxLineSize + (2 << 20)} {
		long := strings.Repeat("x", size)
		in := long + "\n" + `{"action": "x", "result": "ok", "timestamp": "2026-11-25T16:58:34+00:00"}` + "\n" + long
		r := NewReader(strings.NewReader(in), 1, 0)
		l, err := r.Next()
		if err != nil || !errors.Is(l.Err, ErrLineTooLong) || l.Size != int64(size) || len(l.Raw) != MaxLineSize ||
			!bytes.Equal(l.Leaf, LeafHash([]byte(long))) || !strings.Contains(l.Err.Error(), "line 1") {
			t.Fatalf("size %d: line %d size %d raw %d, err %v / %v", size, l.Number, l.Size, len(l.Raw), l.Err, err)
		}
		l, err = r.Next()
		if err != nil || l.Err != nil || l.Number != 2 || l.Offset != int64(size+1) {
			t.Fatalf("size %d: line after the long one: %+v %v", size, l, err)
		}
		if _, err := r.Next(); err != io.EOF || r.PendingSize() != int64(size) || len(r.Pending()) != MaxLineSize {
			t.Fatalf("size %d: pending %d (%d kept), %v", size, r.PendingSize(), len(r.Pending()), err)
		}
	}
	// At the limit exactly the line is parsed.
	r := NewReader(strings.NewReader(strings.Repeat(" ", MaxLineSize)+"\n"), 1, 0)
	if l, err := r.Next(); err != nil || errors.Is(l.Err, ErrLineTooLong) || l.Size != MaxLineSize {
		t.Fatalf("line of MaxLineSize bytes: %v %v", l.Err, err)
	}
}

func TestReaderResume(t *testing.T) {
	all := strings.Join(sampleLines(t), "")
	full, _ := readAll(t, all)
	r := NewReader(strings.NewReader(all[full[3].Offset:]), 4, full[3].Offset)
	l, err := r.Next()
	if err != nil || l.Number != 4 || l.Offset != full[3].Offset || string(l.Raw) != string(full[3].Raw) {
		t.Fatalf("resumed line = %d@%d %q, %v", l.Number, l.Offset, l.Raw, err)
	}
}
