package audit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader checks that the reader never loses or invents bytes: the lines
// it returns plus the pending tail are exactly the input, every line is
// either parsed or carries a *LineError naming it.
func FuzzReader(f *testing.F) {
	for _, l := range sampleLines(f) {
		f.Add([]byte(l))
	}
	f.Add([]byte("{}\n\n[]\nnot json\n{\"action\": \"apply\"}"))
	f.Add([]byte(`{"action": "apply", "result": "applied", "source_modified": "x", "timestamp": "2026-11-25T16:58:35Z"}` + "\n"))
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
