package clitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinaries(t *testing.T) {
	s, v, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{s, v} {
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		if !strings.Contains(string(out), "Usage") {
			t.Errorf("%s --help: %q", bin, out)
		}
	}
	s2, v2, _ := Binaries()
	if s2 != s || v2 != v {
		t.Errorf("second call built again: %s %s", s2, v2)
	}
}

// TestDigestCoversEmbeddedFiles: an edit to a file a package embeds (not
// .go) changes the digest, so a stale binary is never reused.
func TestDigestCoversEmbeddedFiles(t *testing.T) {
	root := t.TempDir()
	write := func(name, s string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n")
	write("schemas/p.schema.json", `{"type":"object"}`)
	a, err := digest(root)
	if err != nil {
		t.Fatal(err)
	}
	write("schemas/p.schema.json", `{"type":"array"}`)
	b, _ := digest(root)
	write(".git/HEAD", "ref: x\n")
	c, _ := digest(root)
	if a == b || b != c {
		t.Fatalf("digests %s, %s (schema edited), %s (.git touched): want the schema edit alone to change it", a, b, c)
	}
}
