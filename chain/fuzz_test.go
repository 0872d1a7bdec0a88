package chain_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/internal/nixostest"
)

// fuzzTree is the tree FuzzApplyPatch patches: the fixture, plus symlinks
// pointing out of it (relative and absolute) and an executable.
func fuzzTree(t *testing.T) (top, dir, outside string) {
	top = t.TempDir()
	dir, outside = filepath.Join(top, "tree"), filepath.Join(top, "outside")
	nixostest.WriteBase(t, dir, nixostest.Host)
	tree{"secret": f("keep\n")}.write(t, outside)
	tree{"out": l("../outside"), "abs": l(outside), "out-file": l("../outside/secret"), "bin/run": x("#!/bin/sh\n"), "a": f(base)}.write(t, dir)
	return top, dir, outside
}

func FuzzApplyPatch(f *testing.F) {
	for _, p := range []string{nixostest.PatchFooPlain, nixostest.PatchFoo, nixostest.PatchBar} {
		f.Add(nixostest.Patch(f, p))
	}
	for _, s := range []string{
		"diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n",
		"diff --git a/new b/new\nnew file mode 100755\n--- /dev/null\n+++ b/new\n@@ -0,0 +1 @@\n+x\n",
		"diff --git a/a b/a\ndeleted file mode 100644\n--- a/a\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-one\n-two\n",
		"diff --git a/a b/b\nsimilarity index 100%\nrename from a\nrename to b\n",
		"diff --git a/bin/run b/bin/run\nold mode 100755\nnew mode 100644\n",
		"diff --git a/out/secret b/out/secret\n--- a/out/secret\n+++ b/out/secret\n@@ -1 +1 @@\n-keep\n+gone\n",
		"diff --git a/out-file b/out-file\n--- a/out-file\n+++ b/out-file\n@@ -1 +1 @@\n-../outside/secret\n+x\n",
		"diff --git a/../x b/../x\nnew file mode 100644\n--- /dev/null\n+++ b/../x\n@@ -0,0 +1 @@\n+x\n",
		"--- /dev/null\n+++ /etc/x\n@@ -0,0 +1 @@\n+x\n",
		"diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc\n\\ No newline at end of file\ndiff --git a/l/x b/l/x\nnew file mode 100644\n--- /dev/null\n+++ b/l/x\n@@ -0,0 +1 @@\n+x\n",
		"diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\ndiff --git a/modules/fun.nix b/modules/fun.nix\n--- a/modules/fun.nix\n+++ b/modules/fun.nix\n@@ -1 +1 @@\n-nope\n+x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, patch []byte) {
		top, dir, outside := fuzzTree(t)
		before, err := chain.NarHash(dir)
		if err != nil {
			t.Fatal(err)
		}
		outBefore, err := chain.NarHash(top) // covers the outside dir and the tree's siblings
		if err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		aerr := chain.ApplyPatch(root, patch)
		root.Close()

		if h, err := chain.NarHash(outside); err != nil || h != mustHash(t, dirOf(t, tree{"secret": f1("keep\n")})) {
			t.Fatalf("the outside dir changed (%v); patch %q", err, patch)
		}
		ents, err := os.ReadDir(top)
		if err != nil || len(ents) != 2 {
			t.Fatalf("beside the tree: %v, %v", ents, err)
		}
		if aerr != nil {
			after, err := chain.NarHash(dir)
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Fatalf("ApplyPatch failed (%v) but changed the tree; patch %q", aerr, patch)
			}
			if h, _ := chain.NarHash(top); h != outBefore {
				t.Fatalf("ApplyPatch failed (%v) but changed something; patch %q", aerr, patch)
			}
			return
		}
		tmp, err := filepath.Glob(filepath.Join(dir, ".chain-apply-*"))
		if err != nil || len(tmp) != 0 {
			t.Fatalf("temporary files left: %v %v", tmp, err)
		}
	})
}

func mustHash(t *testing.T, dir string) string {
	t.Helper()
	h, err := chain.NarHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// narStr is one NAR wire string: length, bytes, zero padding to 8.
func narStr(s string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(s)))
	b = append(b, s...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// rawNAR builds a NAR from tokens, without any checks (for hostile seeds).
func rawNAR(tokens ...string) []byte {
	var b []byte
	for _, t := range tokens {
		b = append(b, narStr(t)...)
	}
	return b
}

func FuzzUnpackNAR(f *testing.F) {
	var good bytes.Buffer
	src := f.TempDir()
	tree{"a": f1("a\n"), "bin/run": x("#!/bin/sh\n"), "link": l("../../etc/passwd"), "d/e": f1(base)}.write(f, src)
	if err := chain.DumpNAR(&good, src); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:good.Len()/2])
	file := rawNAR("nix-archive-1", "(", "type", "regular", "contents", "hi", ")")
	f.Add(file)
	entry := func(name string, node ...string) []string {
		return append(append([]string{"entry", "(", "name", name, "node"}, node...), ")")
	}
	reg := []string{"(", "type", "regular", "contents", "x", ")"}
	dirOpen := []string{"nix-archive-1", "(", "type", "directory"}
	for _, name := range []string{"..", ".", "", "a/b", "a\x00b"} {
		f.Add(rawNAR(append(append(dirOpen, entry(name, reg...)...), ")")...))
	}
	// a symlink, then a directory entry beneath it
	sym := []string{"(", "type", "symlink", "target", "/etc", ")"}
	sub := append(append([]string{"(", "type", "directory"}, entry("x", reg...)...), ")")
	f.Add(rawNAR(append(append(append(dirOpen, entry("l", sym...)...), entry("l", sub...)...), ")")...))
	// duplicate names
	f.Add(rawNAR(append(append(append(dirOpen, entry("a", reg...)...), entry("a", reg...)...), ")")...))

	f.Fuzz(func(t *testing.T, data []byte) {
		top := t.TempDir()
		tree{"sentinel": f1("keep\n")}.write(t, top)
		dst := filepath.Join(top, "out")
		err := chain.UnpackNAR(bytes.NewReader(data), dst)
		ents, rerr := os.ReadDir(top)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, e := range ents {
			if e.Name() != "sentinel" && e.Name() != "out" {
				t.Fatalf("UnpackNAR created %q beside its target", e.Name())
			}
		}
		if b, _ := os.ReadFile(filepath.Join(top, "sentinel")); string(b) != "keep\n" {
			t.Fatalf("sentinel changed to %q", b)
		}
		if err != nil {
			return
		}
		var back bytes.Buffer
		if err := chain.DumpNAR(&back, dst); err != nil {
			t.Fatalf("unpacked tree cannot be dumped: %v", err)
		}
		if !bytes.HasPrefix(data, back.Bytes()) {
			t.Fatalf("unpacked tree dumps to another NAR (%d bytes, input %d)", back.Len(), len(data))
		}
	})
}

// f1 is f (a regular file), named apart from the *testing.F parameter.
func f1(s string) node { return f(s) }
