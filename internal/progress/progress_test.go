package progress

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// Piped or quiet, no bar is drawn, and the nil bar is safe to use.
func TestQuietWhenNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Enabled(f) {
		t.Fatal("a regular file counted as a terminal")
	}
	if b := New(100, "x", true); b != nil {
		t.Fatal("quiet bar drawn")
	}
	var b *Bar
	b.Set(10)
	b.Add(5)
	b.Done()
	src := bytes.NewReader([]byte("abc"))
	if r := b.Reader(src); r != io.Reader(src) {
		t.Fatal("nil bar wrapped the reader")
	}
}
