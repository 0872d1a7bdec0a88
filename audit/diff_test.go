package audit

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseDiffSample(t *testing.T) {
	tests := []struct {
		file string
		want []FileChange
	}{
		{"20261125-165835-create-module-foo.patch", []FileChange{
			{OldPath: "modules/agentic-base.nix", NewPath: "modules/agentic-base.nix", Op: "modify"},
			{NewPath: "modules/foo.nix", Op: "create"},
		}},
		{"20261125-165835-worktree-create-module-foo-with-template-packages.patch", []FileChange{
			{NewPath: ".agentix/proposals/20261125-165835-create-module-foo.patch", Op: "create"},
			{OldPath: "modules/agentic-base.nix", NewPath: "modules/agentic-base.nix", Op: "modify"},
			{NewPath: "modules/foo.nix", Op: "create"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(sampleDir, "proposals", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseDiff(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseDiffCases(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		files []string
		err   error
	}{
		{"delete", "diff --git a/x.nix b/x.nix\ndeleted file mode 100644\n--- a/x.nix\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n", []string{"x.nix"}, nil},
		{"rename only", "diff --git a/old.nix b/new.nix\nsimilarity index 100%\nrename from old.nix\nrename to new.nix\n", []string{"new.nix", "old.nix"}, nil},
		{"mode only", "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n", []string{"run.sh"}, nil},
		{"binary", "diff --git a/a.png b/a.png\nindex 1..2 100644\nBinary files a/a.png and b/a.png differ\n", []string{"a.png"}, nil},
		{"quoted", "diff --git \"a/sp ace\\tx\" \"b/sp ace\\tx\"\n--- \"a/sp ace\\tx\"\n+++ \"b/sp ace\\tx\"\n@@ -1 +1 @@\n-a\n+b\n", []string{"sp ace\tx"}, nil},
		{"octal quoted", "--- \"a/\\303\\251\"\n+++ \"b/\\303\\251\"\n@@ -1 +1 @@\n-a\n+b\n", []string{"é"}, nil},
		{"unquoted with space", "diff --git a/my file b/my file\nnew file mode 100644\n--- /dev/null\n+++ b/my file\n@@ -0,0 +1 @@\n+x\n", []string{"my file"}, nil},
		{"timestamped headers", "--- x.c\t2026-01-01 00:00:00\n+++ x.c\t2026-01-02 00:00:00\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n", []string{"x.c"}, nil},
		{"header-like lines inside hunk", "--- a/p.patch\n+++ b/p.patch\n@@ -1,2 +1,3 @@\n--- a/evil\n+--- a/evil2\n++++ b/evil3\n context\n", []string{"p.patch"}, nil},
		{"no newline marker", "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n", []string{"f"}, nil},
		{"blank context line", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n", []string{"f"}, nil},
		{"not a diff", "hello\nworld\n", nil, ErrNotDiff},
		{"empty", "", nil, ErrNotDiff},
		{"short hunk", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n", nil, ErrBadDiff},
		{"bad hunk header", "--- a/f\n+++ b/f\n@@ -x +1 @@\n a\n", nil, ErrBadDiff},
		{"both dev null", "--- /dev/null\n+++ /dev/null\n", nil, ErrBadDiff},
		{"bad quote", "--- \"a/x\n+++ b/x\n", nil, ErrBadDiff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDiff([]byte(tc.in))
			if tc.err != nil {
				var de *DiffError
				if !errors.Is(err, tc.err) || !errors.As(err, &de) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if files := FilesTouched(got); !reflect.DeepEqual(files, tc.files) {
				t.Fatalf("files = %q, want %q (changes %+v)", files, tc.files, got)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/home/operator/nixos-config/.agentix/proposals/x.patch", ".agentix/proposals/x.patch", true},
		{"/srv/copy/of/ws/.agentix/audit.jsonl", ".agentix/audit.jsonl", true},
		{".agentix/proposals/x.patch", ".agentix/proposals/x.patch", true},
		{"/a/.agentix/old/.agentix/proposals/y.patch", ".agentix/proposals/y.patch", true},
		{"/home/operator/nixos-config/.agentix/proposals/../../etc/passwd", "", false},
		{"/home/operator/nixos-config/modules/foo.nix", "", false},
		{"/x/.agentixfoo/p.patch", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := ResolvePath(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
