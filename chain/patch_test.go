package chain_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/internal/nixostest"
)

// needGit skips outside CI when git is missing.
func needGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("git not found but CI is set: %v", err)
		}
		t.Skipf("git not installed; skipping a test that compares with git apply")
	}
}

// node is one file of a test tree: content, and kind.
type node struct {
	data string
	kind byte // 'f' file, 'x' executable, 'l' symlink (data is the target)
}

func f(s string) node { return node{s, 'f'} }
func x(s string) node { return node{s, 'x'} }
func l(s string) node { return node{s, 'l'} }

type tree map[string]node

// write lays t out under dir.
func (t tree) write(tb testing.TB, dir string) {
	tb.Helper()
	for name, n := range t {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		var err error
		switch n.kind {
		case 'l':
			err = os.Symlink(n.data, p)
		case 'x':
			if err = os.WriteFile(p, []byte(n.data), 0o755); err == nil {
				err = os.Chmod(p, 0o755)
			}
		default:
			err = os.WriteFile(p, []byte(n.data), 0o644)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// dirOf returns a new dir holding t.
func dirOf(tb testing.TB, t tree) string {
	tb.Helper()
	d := tb.TempDir()
	t.write(tb, d)
	return d
}

// gitDiff returns the patch `git diff` (with renames and binary data)
// writes for the change from before to after.
func gitDiff(tb testing.TB, before, after tree) []byte {
	tb.Helper()
	ws := tb.TempDir()
	nixostest.Git(tb, ws, "init", "-q")
	before.write(tb, ws)
	nixostest.Git(tb, ws, "add", "-A")
	nixostest.Git(tb, ws, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "--allow-empty", "-m", "before")
	for name := range before {
		os.Remove(filepath.Join(ws, filepath.FromSlash(name)))
	}
	after.write(tb, ws)
	nixostest.Git(tb, ws, "add", "-A")
	return []byte(nixostest.Git(tb, ws, "diff", "--cached", "-M", "--binary"))
}

// applyWith applies patch to dir with chain.ApplyPatch.
func applyWith(tb testing.TB, dir string, patch []byte) error {
	tb.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer root.Close()
	return chain.ApplyPatch(root, patch)
}

// gitApply applies patch to dir with real `git apply` (dir is no repo).
func gitApply(tb testing.TB, dir string, patch []byte) error {
	tb.Helper()
	pf := filepath.Join(tb.TempDir(), "p.patch")
	if err := os.WriteFile(pf, patch, 0o644); err != nil {
		tb.Fatal(err)
	}
	_, err := nixostest.TryGit(dir, "apply", pf)
	return err
}

// sameTree fails tb unless a and b agree byte for byte (content, type,
// executable bit).
func sameTree(tb testing.TB, what, a, b string) {
	tb.Helper()
	d, err := chain.DiffTrees(a, b)
	if err != nil {
		tb.Fatal(err)
	}
	if len(d) != 0 {
		tb.Fatalf("%s: trees differ at %q", what, d)
	}
}

func TestApplyPatchSampleMatchesGitApply(t *testing.T) {
	needGit(t)
	for _, seq := range [][]string{
		{nixostest.PatchFoo, nixostest.PatchBar},
		{nixostest.PatchFooPlain},
	} {
		t.Run(strings.Join(seq, "+"), func(t *testing.T) {
			ours, theirs := t.TempDir(), t.TempDir()
			nixostest.WriteBase(t, ours, nixostest.Host)
			nixostest.WriteBase(t, theirs, nixostest.Host)
			for _, p := range seq {
				patch := nixostest.Patch(t, p)
				if err := applyWith(t, ours, patch); err != nil {
					t.Fatalf("ApplyPatch %s: %v", p, err)
				}
				if err := gitApply(t, theirs, patch); err != nil {
					t.Fatalf("git apply %s: %v", p, err)
				}
				sameTree(t, "after "+p, ours, theirs)
			}
			if seq[0] == nixostest.PatchFoo {
				if _, err := os.Stat(filepath.Join(ours, ".agentix", "proposals", "20261125-165837-create-module-bar.patch")); err != nil {
					t.Fatalf("the worktree patch's proposal file: %v", err)
				}
			}
		})
	}
}

const base = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n"

// TestApplyPatchLikeGit: patches git diff writes, applied by ApplyPatch
// and by git apply, give the same tree, and the tree git diff started from.
func TestApplyPatchLikeGit(t *testing.T) {
	needGit(t)
	for _, tc := range []struct {
		name          string
		before, after tree
		// applyTo, when set, is the tree the patch is applied to instead
		// of before (e.g. with lines moved, for an offset).
		applyTo tree
	}{
		{name: "new file", before: tree{"a": f("a\n")}, after: tree{"a": f("a\n"), "dir/sub/new.nix": f("{ }\n")}},
		{name: "new executable", before: tree{"a": f("a\n")}, after: tree{"a": f("a\n"), "bin/run": x("#!/bin/sh\necho hi\n")}},
		{name: "new empty file", before: tree{"a": f("a\n")}, after: tree{"a": f("a\n"), "empty": f("")}},
		{name: "delete, emptying a directory", before: tree{"a": f("a\n"), "sub/dir/gone": f(base)}, after: tree{"a": f("a\n")}},
		{name: "delete one of two", before: tree{"sub/a": f("a\n"), "sub/b": f(base)}, after: tree{"sub/a": f("a\n")}},
		{name: "rename", before: tree{"old/name.nix": f(base)}, after: tree{"new/name.nix": f(base)}},
		{name: "rename and edit", before: tree{"old.nix": f(base)}, after: tree{"new.nix": f(strings.Replace(base, "five", "FIVE", 1))}},
		{name: "mode change", before: tree{"s": f("echo\n")}, after: tree{"s": x("echo\n")}},
		{name: "mode and content", before: tree{"s": x("echo\n")}, after: tree{"s": f("echo 2\n")}},
		{name: "two hunks", before: tree{"a": f(base + base + base)}, after: tree{"a": f(strings.Replace(base, "two", "2", 1) + base + strings.Replace(base, "nine", "9", 1))}},
		{name: "no newline at end", before: tree{"a": f("x\ny")}, after: tree{"a": f("x\nz\ny")}},
		{name: "add newline at end", before: tree{"a": f("x\ny")}, after: tree{"a": f("x\ny\n")}},
		{name: "append at end", before: tree{"a": f(base)}, after: tree{"a": f(base + "eleven\n")}},
		{name: "prepend", before: tree{"a": f(base)}, after: tree{"a": f("zero\n" + base)}},
		{name: "new symlink", before: tree{"a": f("a\n")}, after: tree{"a": f("a\n"), "link": l("a")}},
		{name: "retarget symlink", before: tree{"a": f("a\n"), "link": l("a")}, after: tree{"a": f("a\n"), "link": l("b")}},
		{name: "binary", before: tree{"b.bin": f("\x00\x01\x02binary\x00")}, after: tree{"b.bin": f("\x00\x01\x03binary\x00more")}},
		{
			name:    "hunk at an offset",
			before:  tree{"a": f(base)},
			after:   tree{"a": f(strings.Replace(base, "six", "SIX", 1))},
			applyTo: tree{"a": f("extra\nlines\non top\n" + base)},
		},
		{
			name:    "hunk at a negative offset",
			before:  tree{"a": f("extra\nlines\non top\n" + base)},
			after:   tree{"a": f("extra\nlines\non top\n" + strings.Replace(base, "six", "SIX", 1))},
			applyTo: tree{"a": f(base)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			patch := gitDiff(t, tc.before, tc.after)
			from := tc.before
			if tc.applyTo != nil {
				from = tc.applyTo
			}
			ours, theirs := dirOf(t, from), dirOf(t, from)
			if err := gitApply(t, theirs, patch); err != nil {
				t.Fatalf("git apply: %v\n%s", err, patch)
			}
			if err := applyWith(t, ours, patch); err != nil {
				t.Fatalf("ApplyPatch: %v\n%s", err, patch)
			}
			sameTree(t, "ApplyPatch vs git apply", ours, theirs)
			if tc.applyTo == nil {
				sameTree(t, "ApplyPatch vs the tree diffed", ours, dirOf(t, tc.after))
			}
		})
	}
}

// TestApplyPatchRefuses: patches that must not apply leave the tree as it
// was, say which file failed, and match the right errors; git refuses
// them too (where git is asked).
func TestApplyPatchRefuses(t *testing.T) {
	needGit(t)
	outside := t.TempDir()
	for _, tc := range []struct {
		name     string
		tree     tree
		patch    string
		wantFile string
		wantErr  error // besides ErrPatchDoesNotApply
		gitToo   bool  // git apply refuses it as well
	}{
		{
			name:     "context mismatch",
			tree:     tree{"modules/a.nix": f(strings.Replace(base, "five", "FIVE", 1))},
			patch:    "diff --git a/modules/a.nix b/modules/a.nix\n--- a/modules/a.nix\n+++ b/modules/a.nix\n@@ -3,5 +3,5 @@\n three\n four\n-five\n+5\n six\n seven\n",
			wantFile: "modules/a.nix", gitToo: true,
		},
		{
			name:     "second file fails, first is not applied",
			tree:     tree{"a": f(base), "b": f("other\n")},
			patch:    "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\ndiff --git a/b b/b\n--- a/b\n+++ b/b\n@@ -1 +1 @@\n-not there\n+x\n",
			wantFile: "b", gitToo: true,
		},
		{
			name:     "new file exists",
			tree:     tree{"a": f("a\n")},
			patch:    "diff --git a/a b/a\nnew file mode 100644\n--- /dev/null\n+++ b/a\n@@ -0,0 +1 @@\n+b\n",
			wantFile: "a", gitToo: true,
		},
		{
			name:     "delete missing file",
			tree:     tree{"a": f("a\n")},
			patch:    "diff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n",
			wantFile: "gone", gitToo: true,
		},
		{
			name:     "delete leaves content",
			tree:     tree{"a": f("a\nb\n")},
			patch:    "diff --git a/a b/a\ndeleted file mode 100644\n--- a/a\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n",
			wantFile: "a", gitToo: true,
		},
		{
			name:     "hunk must match at end",
			tree:     tree{"a": f(base + "eleven\n")},
			patch:    "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -8,3 +8,4 @@\n eight\n nine\n ten\n+more\n",
			wantFile: "a", gitToo: true,
		},
		{
			name:     "dotdot",
			tree:     tree{"a": f("a\n")},
			patch:    "diff --git a/../x b/../x\nnew file mode 100644\n--- /dev/null\n+++ b/../x\n@@ -0,0 +1 @@\n+escaped\n",
			wantFile: "../x", wantErr: chain.ErrUnsafePath, gitToo: true,
		},
		{
			name:     "dotdot inside",
			tree:     tree{"a": f("a\n")},
			patch:    "--- a/sub/../../x\n+++ b/sub/../../x\n@@ -0,0 +1 @@\n+escaped\n",
			wantFile: "sub/../../x", wantErr: chain.ErrUnsafePath,
		},
		{
			name:  "absolute",
			tree:  tree{"a": f("a\n")},
			patch: "diff --git a/" + outside + "/abs b/" + outside + "/abs\nnew file mode 100644\n--- /dev/null\n+++ b/" + outside + "/abs\n@@ -0,0 +1 @@\n+escaped\n",
			// go-gitdiff already refuses the names as inconsistent; any
			// refusal that leaves the tree alone will do.
		},
		{
			name:     "into .git",
			tree:     tree{"a": f("a\n")},
			patch:    "diff --git a/.git/hooks/post-checkout b/.git/hooks/post-checkout\nnew file mode 100755\n--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+evil\n",
			wantFile: ".git/hooks/post-checkout", wantErr: chain.ErrUnsafePath,
		},
		{
			name:     "through a symlink pointing out",
			tree:     tree{"a": f("a\n"), "out": l(outside)},
			patch:    "diff --git a/out/evil b/out/evil\nnew file mode 100644\n--- /dev/null\n+++ b/out/evil\n@@ -0,0 +1 @@\n+escaped\n",
			wantFile: "out/evil", wantErr: chain.ErrUnsafePath, gitToo: true,
		},
		{
			name:     "through a symlink pointing inside",
			tree:     tree{"d/a": f("a\n"), "in": l("d")},
			patch:    "diff --git a/in/a b/in/a\n--- a/in/a\n+++ b/in/a\n@@ -1 +1 @@\n-a\n+b\n",
			wantFile: "in/a", wantErr: chain.ErrUnsafePath, gitToo: true,
		},
		{
			name:     "symlink patched as a file",
			tree:     tree{"a": f("a\n"), "link": l(outside + "/target")},
			patch:    "diff --git a/link b/link\nindex 1234567..89abcde 100644\n--- a/link\n+++ b/link\n@@ -1 +1 @@\n-x\n+y\n",
			wantFile: "link", gitToo: true,
		},
		{
			name:    "garbage",
			tree:    tree{"a": f("a\n")},
			patch:   "this is no patch\n",
			wantErr: chain.ErrMalformedPatch, gitToo: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(outside, "target"), []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir, orig := dirOf(t, tc.tree), dirOf(t, tc.tree)
			err := applyWith(t, dir, []byte(tc.patch))
			if !errors.Is(err, chain.ErrPatchDoesNotApply) {
				t.Fatalf("ApplyPatch = %v, want ErrPatchDoesNotApply", err)
			}
			var pe *chain.PatchError
			if !errors.As(err, &pe) {
				t.Fatalf("ApplyPatch = %T %v, want a *PatchError", err, err)
			}
			if tc.wantFile != "" && pe.File != tc.wantFile {
				t.Errorf("PatchError.File = %q, want %q (%v)", pe.File, tc.wantFile, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("ApplyPatch = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), pe.File) {
				t.Errorf("error %q does not name the file %q", err, pe.File)
			}
			sameTree(t, "tree after a refused patch", dir, orig)
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Fatalf("outside dir holds %d entries, want only target", len(ents))
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "target")); string(b) != "x\n" {
				t.Fatalf("outside target now %q", b)
			}
			if tc.gitToo {
				g := dirOf(t, tc.tree)
				if err := gitApply(t, g, []byte(tc.patch)); err == nil {
					t.Errorf("git apply accepted the patch ApplyPatch refuses")
				}
			}
		})
	}
}

// TestApplyPatchTraditionalAbsoluteName: a traditional diff naming
// /tmp/…/abs has its first component stripped (-p1), as git apply does, so
// the file lands inside the tree, never at the absolute path.
func TestApplyPatchTraditionalAbsoluteName(t *testing.T) {
	needGit(t)
	outside := t.TempDir()
	patch := []byte("--- /dev/null\n+++ " + outside + "/abs\n@@ -0,0 +1 @@\n+inside\n")
	ours, theirs := dirOf(t, tree{"a": f("a\n")}), dirOf(t, tree{"a": f("a\n")})
	if err := applyWith(t, ours, patch); err != nil {
		t.Fatal(err)
	}
	if err := gitApply(t, theirs, patch); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "ApplyPatch vs git apply", ours, theirs)
	if b, err := os.ReadFile(filepath.Join(ours, outside, "abs")); err != nil || string(b) != "inside\n" {
		t.Fatalf("inside the tree: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("the absolute path was written: %v", ents)
	}
}
