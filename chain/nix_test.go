package chain_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/internal/nixostest"
)

// TestNarHashMatchesNix: NarHash equals `nix hash path` on trees with
// executables, symlinks (one pointing out), empty files and directories.
func TestNarHashMatchesNix(t *testing.T) {
	nixostest.Need(t)
	fixture := t.TempDir()
	nixostest.WriteBase(t, fixture, nixostest.Host)
	for name, dir := range map[string]string{
		"fixture": fixture,
		"mixed": dirOf(t, tree{
			"a":             f("a\n"),
			"bin/run":       x("#!/bin/sh\n"),
			"empty":         f(""),
			"link-in":       l("a"),
			"link-out":      l("/etc/passwd"),
			"deep/er/b.nix": f(base),
			"Z-upper":       f("sorted before a\n"),
		}),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := chain.NarHash(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := nixostest.HashPath(t, dir); got != want {
				t.Fatalf("NarHash(%s) = %s, nix hash path = %s", dir, got, want)
			}
		})
	}
}

// TestChainStatesMatchFlakeSource: at genesis and after each sample patch,
// the node's git+file: source (patches applied with git apply --index)
// hashes like the auditor's rebuild (git archive of the genesis commit, then
// ApplyPatch in a plain dir), and the evaluated toplevel agrees.
func TestChainStatesMatchFlakeSource(t *testing.T) {
	nixostest.Need(t)
	ctx := context.Background()
	ws := nixostest.NewWorkspace(t, nixostest.Host)
	// .agentix/ is untracked on the node: it stays out of the source.
	if err := os.MkdirAll(filepath.Join(ws, ".agentix"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "S")
	nixostest.Archive(t, ws, "HEAD", plain)
	root, err := os.OpenRoot(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	attr := chain.DefaultAttr(nixostest.Host)

	seen := map[string]string{}
	for i, p := range []string{"", nixostest.PatchFoo, nixostest.PatchBar} {
		state := "S0"
		if p != "" {
			state = "after " + p
			nixostest.ApplyIndex(t, ws, nixostest.PatchPath(t, p))
			if err := chain.ApplyPatch(root, nixostest.Patch(t, p)); err != nil {
				t.Fatalf("%s: ApplyPatch: %v", state, err)
			}
		}
		src, err := chain.FlakeSource(ctx, ws)
		if err != nil {
			t.Fatalf("%s: FlakeSource: %v", state, err)
		}
		got, err := chain.NarHash(plain)
		if err != nil {
			t.Fatal(err)
		}
		if src.NarHash != got {
			t.Fatalf("%s: git+file: narHash %s, rebuilt tree %s", state, src.NarHash, got)
		}
		if (i == 0) != (src.Rev != "") {
			t.Errorf("%s: Rev = %q (want one only for the clean genesis commit)", state, src.Rev)
		}
		if !strings.HasPrefix(src.StorePath, "/nix/store/") {
			t.Errorf("%s: StorePath = %q", state, src.StorePath)
		}
		if h, err := chain.NarHash(src.StorePath); err != nil || h != src.NarHash {
			t.Errorf("%s: the store path hashes to %s (%v), want %s", state, h, err, src.NarHash)
		}

		onPlain, err := chain.Evaluate(ctx, plain, attr)
		if err != nil {
			t.Fatalf("%s: Evaluate: %v", state, err)
		}
		onNode, err := chain.EvaluateFlake(ctx, "git+file://"+ws, attr)
		if err != nil {
			t.Fatalf("%s: EvaluateFlake: %v", state, err)
		}
		if onPlain != onNode {
			t.Fatalf("%s: Evaluate %+v, EvaluateFlake %+v", state, onPlain, onNode)
		}
		if onPlain.Attr != attr || !strings.HasSuffix(onPlain.DrvPath, ".drv") || !strings.HasSuffix(onPlain.OutPath, "-nixos-system-"+nixostest.Host) {
			t.Fatalf("%s: toplevel %+v", state, onPlain)
		}
		if prev, dup := seen[onPlain.OutPath]; dup {
			t.Fatalf("%s: outPath %s did not change since %s", state, onPlain.OutPath, prev)
		}
		seen[onPlain.OutPath] = state
		if _, err := os.Stat(filepath.Join(plain, "flake.lock")); err == nil {
			t.Fatalf("%s: Evaluate wrote flake.lock into the tree", state)
		}
	}
}

// TestBuildMatchesEvaluate: the fixture really builds, to the evaluated
// outPath, and lists the modules.
func TestBuildMatchesEvaluate(t *testing.T) {
	nixostest.Need(t)
	ws := nixostest.NewWorkspace(t, nixostest.Host)
	nixostest.ApplyIndex(t, ws, nixostest.PatchPath(t, nixostest.PatchFoo))
	attr := chain.DefaultAttr(nixostest.Host)
	out := nixostest.Build(t, ws, attr)
	top, err := chain.EvaluateFlake(context.Background(), "git+file://"+ws, attr)
	if err != nil {
		t.Fatal(err)
	}
	if out != top.OutPath {
		t.Fatalf("nix build %s, EvaluateFlake %s", out, top.OutPath)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "agentic-base.nix devtools.nix foo.nix fun.nix\n" {
		t.Fatalf("toplevel lists %q", got)
	}
}

// TestEvaluateErrors: a flake whose input cannot be fetched cannot be
// evaluated here; a broken flake fails evaluation with Nix's message.
func TestEvaluateErrors(t *testing.T) {
	nixostest.Need(t)
	ctx := context.Background()
	attr := chain.DefaultAttr(nixostest.Host)
	for _, tc := range []struct {
		name   string
		flake  string
		attr   string
		want   error
		stderr string // in the error
	}{
		{
			name:  "missing github input",
			flake: `{ inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05"; outputs = { self, nixpkgs }: { }; }`,
			want:  chain.ErrCannotEvaluate,
		},
		{
			name:  "missing path input",
			flake: `{ inputs.other.url = "path:/nonexistent/agentix-chain-test"; outputs = { self, other }: { }; }`,
			want:  chain.ErrCannotEvaluate, stderr: "/nonexistent/agentix-chain-test",
		},
		{
			name:  "syntax error",
			flake: `{ outputs = { self }: { x = 1 +; }; }`,
			want:  chain.ErrEvaluation, stderr: "syntax error",
		},
		{
			name:  "no such host",
			flake: nixostest.Files(nixostest.Host)["flake.nix"],
			attr:  chain.DefaultAttr("otherhost"),
			want:  chain.ErrEvaluation, stderr: "otherhost",
		},
		{
			name:  "evaluation throws",
			flake: `{ outputs = { self }: { nixosConfigurations.testhost.config.system.build.toplevel = throw "boom-in-eval"; }; }`,
			want:  chain.ErrEvaluation, stderr: "boom-in-eval",
		},
		{
			name:  "not a derivation",
			flake: `{ outputs = { self }: { nixosConfigurations.testhost.config.system.build.toplevel = 42; }; }`,
			want:  chain.ErrEvaluation,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			nixostest.WriteBase(t, dir, nixostest.Host)
			if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(tc.flake), 0o644); err != nil {
				t.Fatal(err)
			}
			a := attr
			if tc.attr != "" {
				a = tc.attr
			}
			_, err := chain.Evaluate(ctx, dir, a)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Evaluate = %v, want %v", err, tc.want)
			}
			other := chain.ErrEvaluation
			if tc.want == chain.ErrEvaluation {
				other = chain.ErrCannotEvaluate
			}
			if errors.Is(err, other) {
				t.Fatalf("Evaluate = %v, matches %v too", err, other)
			}
			if !strings.Contains(err.Error(), tc.stderr) {
				t.Fatalf("Evaluate = %v, want it to say %q", err, tc.stderr)
			}
		})
	}
}

// TestEvaluateTakesTheGivenTree: with the source of an earlier state
// already in the store, Evaluate still evaluates the tree it is given.
func TestEvaluateTakesTheGivenTree(t *testing.T) {
	nixostest.Need(t)
	ctx := context.Background()
	attr := chain.DefaultAttr(nixostest.Host)
	dir := t.TempDir()
	nixostest.WriteBase(t, dir, nixostest.Host)
	before, err := chain.Evaluate(ctx, dir, attr)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyWith(t, dir, nixostest.Patch(t, nixostest.PatchFooPlain)); err != nil {
		t.Fatal(err)
	}
	after, err := chain.Evaluate(ctx, dir, attr)
	if err != nil {
		t.Fatal(err)
	}
	if before.OutPath == after.OutPath {
		t.Fatalf("outPath %s unchanged after adding foo.nix", after.OutPath)
	}
}

// TestNARRoundTrip: DumpNAR then UnpackNAR gives the same tree and hash;
// the NAR equals nix-store --dump's.
func TestNARRoundTrip(t *testing.T) {
	src := dirOf(t, tree{
		"a":        f("a\n"),
		"bin/run":  x("#!/bin/sh\n"),
		"empty":    f(""),
		"link-out": l("/etc/passwd"),
		"d/e/f":    f(base),
	})
	if err := os.Mkdir(filepath.Join(src, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	var nar bytes.Buffer
	if err := chain.DumpNAR(&nar, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := chain.UnpackNAR(bytes.NewReader(nar.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "unpacked vs source", src, dst)
	h1, _ := chain.NarHash(src)
	h2, _ := chain.NarHash(dst)
	if h1 != h2 || h1 == "" {
		t.Fatalf("hashes %s vs %s", h1, h2)
	}
	// A NAR cut short anywhere is refused (go-nix alone took one cut at an
	// entry boundary for a complete archive).
	for n := 0; n < nar.Len(); n += 8 {
		cut := filepath.Join(t.TempDir(), "cut")
		if err := chain.UnpackNAR(bytes.NewReader(nar.Bytes()[:n]), cut); err == nil {
			t.Fatalf("UnpackNAR accepted the NAR cut to %d of %d bytes", n, nar.Len())
		}
	}
	// Into a non-empty directory: refused, nothing written.
	if err := chain.UnpackNAR(bytes.NewReader(nar.Bytes()), src); err == nil {
		t.Fatal("UnpackNAR into a non-empty directory succeeded")
	}
}

// TestDiffTrees names content, type, exec-bit and presence differences.
func TestDiffTrees(t *testing.T) {
	a := dirOf(t, tree{"same": f("s"), "content": f("1"), "exec": f("e"), "type": f("t"), "only-a": f("a"), "link": l("x"), "d/sub": f("z")})
	b := dirOf(t, tree{"same": f("s"), "content": f("2"), "exec": x("e"), "type": l("t"), "only-b": f("b"), "link": l("y"), "d/sub": f("z")})
	got, err := chain.DiffTrees(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"content", "exec", "link", "only-a", "only-b", "type"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("DiffTrees = %q, want %q", got, want)
	}
}

// TestFlakeSourceNotGitFlake: a workspace without flake.nix or .git is
// ErrNotGitFlake naming what is missing, before Nix is asked.
func TestFlakeSourceNotGitFlake(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		make func()
		want string
	}{
		{func() {}, "no flake.nix"},
		{func() { os.WriteFile(filepath.Join(dir, "flake.nix"), []byte("{ outputs = _: { }; }"), 0o644) }, "no .git"},
	} {
		c.make()
		_, err := chain.FlakeSource(context.Background(), dir)
		if !errors.Is(err, chain.ErrNotGitFlake) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FlakeSource(%s): %v; want ErrNotGitFlake naming %q", dir, err, c.want)
		}
	}
}

func TestSRIRoundTrip(t *testing.T) {
	b := []byte("a NAR")
	s := chain.SRI(b)
	d, err := chain.ParseSRI(s)
	if err != nil || !strings.HasPrefix(s, "sha256-") || len(d) != 32 {
		t.Fatalf("SRI %q, ParseSRI %x, %v", s, d, err)
	}
	for _, bad := range []string{"sha256:abc", "sha512-" + s[7:], "sha256-!!", s[:20]} {
		if _, err := chain.ParseSRI(bad); err == nil {
			t.Errorf("ParseSRI(%q) accepted", bad)
		}
	}
}
