package nixostest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The sample proposals (copied from testdata/agentix/workspace-basic/proposals).
const (
	// PatchFooPlain is the proposal as the agent saved it: a traditional
	// diff adding modules/foo.nix.
	PatchFooPlain = "20261125-165835-create-module-foo.patch"
	// PatchFoo is the worktree run's patch: it adds modules/foo.nix and
	// saves the proposal under .agentix/proposals/.
	PatchFoo = "20261125-165835-worktree-create-module-foo-with-template-packages.patch"
	// PatchBar is the next worktree run's patch, on top of PatchFoo: it
	// adds modules/bar.nix.
	PatchBar = "20261125-165837-worktree-create-module-bar-with-template-packages.patch"
)

// Config is the NIX_CONFIG Need sets: Nix builds offline as root without
// build users or a sandbox, and both flakes and nix-command are enabled.
const Config = "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =\n"

// Host is the host name tests use unless they need another.
const Host = "testhost"

// nixFlags go before every nix subcommand's arguments.
var nixFlags = []string{"--extra-experimental-features", "nix-command flakes"}

// AgenticBase is modules/agentic-base.nix of the base tree (git blob
// e9dacd9, as the sample patches' index lines say).
const AgenticBase = "{ config, pkgs, ... }:\n\n{\n  imports = [\n    ./devtools.nix\n    ./fun.nix\n  ];\n}\n"

const devtools = "{ config, pkgs, ... }:\n\n{\n  # developer tools\n  environment.systemPackages = with pkgs; [\n  ];\n}\n"

const fun = "{ config, pkgs, ... }:\n\n{\n  # fun\n  environment.systemPackages = with pkgs; [\n  ];\n}\n"

// flakeTemplate is flake.nix; %[1]q is the host name, %[2]q the system.
const flakeTemplate = `{
  description = "agentix-store test nixos-config: a tiny module evaluator, no inputs";

  outputs = { self }:
    let
      system = %[2]q;
      # walk visits a module and its imports depth first, each file once.
      walk = seen: file:
        if builtins.elem (toString file) seen.paths then seen
        else
          let
            m = import file { config = { }; pkgs = { }; };
            seen' = {
              paths = seen.paths ++ [ (toString file) ];
              names = seen.names ++ [ (baseNameOf (toString file)) ];
              packages = seen.packages ++ (m.environment.systemPackages or [ ]);
            };
          in builtins.foldl' walk seen' (m.imports or [ ]);
      modules = walk { paths = [ ]; names = [ ]; packages = [ ]; } ./modules/agentic-base.nix;
      names = builtins.sort builtins.lessThan modules.names;
      host = name: {
        config.system.build.toplevel = derivation {
          name = "nixos-system-${name}";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "echo ${builtins.concatStringsSep " " names} > $out" ];
        };
      };
    in {
      nixosConfigurations.${%[1]q} = host %[1]q;
    };
}
`

// System is the Nix system of this machine, as the base flake names it
// (pure evaluation has no builtins.currentSystem).
func System() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}

// Files returns the base tree for host: relative path → content.
func Files(host string) map[string]string {
	return map[string]string{
		"flake.nix":                fmt.Sprintf(flakeTemplate, host, System()),
		"modules/agentic-base.nix": AgenticBase,
		"modules/devtools.nix":     devtools,
		"modules/fun.nix":          fun,
	}
}

// Need skips tb when nix or git is missing, unless CI is set, in which case
// it fails. It sets NIX_CONFIG (Config) for the rest of the test.
func Need(tb testing.TB) {
	tb.Helper()
	for _, prog := range []string{"nix", "git"} {
		if _, err := exec.LookPath(prog); err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("%s not found but CI is set: install nix-bin and git: %v", prog, err)
			}
			tb.Skipf("%s not installed (apt-get install nix-bin git); skipping real-Nix test", prog)
		}
	}
	tb.Setenv("NIX_CONFIG", Config)
}

// WriteBase writes the base tree for host into dir.
func WriteBase(tb testing.TB, dir, host string) {
	tb.Helper()
	for name, content := range Files(host) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// NewWorkspace creates the base nixos-config for host as a git repo in a
// new t.TempDir() (git init, a user, one commit) and returns its path.
func NewWorkspace(tb testing.TB, host string) string {
	tb.Helper()
	ws := tb.TempDir()
	WriteBase(tb, ws, host)
	Git(tb, ws, "init", "-q")
	Git(tb, ws, "config", "user.name", "nixostest")
	Git(tb, ws, "config", "user.email", "nixostest@example.invalid")
	Git(tb, ws, "config", "commit.gpgsign", "false")
	Git(tb, ws, "add", "-A")
	Git(tb, ws, "commit", "-q", "-m", "base nixos-config")
	return ws
}

// ApplyIndex applies patchFile to the workspace with `git apply --index`
// (so the files it adds are staged and the git+file: source sees them).
func ApplyIndex(tb testing.TB, ws, patchFile string) {
	tb.Helper()
	Git(tb, ws, "apply", "--index", patchFile)
}

// Archive writes `git archive` of rev in ws into the new directory dir.
func Archive(tb testing.TB, ws, rev, dir string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tar := filepath.Join(tb.TempDir(), "archive.tar")
	Git(tb, ws, "archive", "-o", tar, rev)
	run(tb, dir, "tar", "-xf", tar)
}

// Build builds attr of the workspace's git+file: flake with real Nix and
// returns the output path.
func Build(tb testing.TB, ws, attr string) string {
	tb.Helper()
	abs, err := filepath.Abs(ws)
	if err != nil {
		tb.Fatal(err)
	}
	args := append(append([]string{}, nixFlags...), "build", "--offline", "--no-link", "--no-write-lock-file", "--json", "git+file://"+abs+"#"+attr)
	out := run(tb, ws, "nix", args...)
	// [{"drvPath":…,"outputs":{"out":"/nix/store/…"}}]; Nix 2.8 has no --print-out-paths.
	i := strings.Index(out, `"out":"`)
	if i < 0 {
		tb.Fatalf("nix build printed no out path: %s", out)
	}
	rest := out[i+len(`"out":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// HashPath returns `nix hash path dir` (SRI).
func HashPath(tb testing.TB, dir string) string {
	tb.Helper()
	return strings.TrimSpace(run(tb, "", "nix", append(append([]string{}, nixFlags...), "hash", "path", dir)...))
}

// PatchPath returns the path of a sample patch (one of the Patch constants).
func PatchPath(tb testing.TB, name string) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("nixostest: cannot find its own source directory")
	}
	p := filepath.Join(filepath.Dir(file), "testdata", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Patch returns the bytes of a sample patch.
func Patch(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(PatchPath(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Git runs git in dir and returns its stdout; a failure fails tb.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	return run(tb, dir, "git", args...)
}

// TryGit runs git in dir and returns its stdout, or an error carrying its
// stderr.
func TryGit(dir string, args ...string) (string, error) {
	return try(dir, "git", args...)
}

func run(tb testing.TB, dir, prog string, args ...string) string {
	tb.Helper()
	out, err := try(dir, prog, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func try(dir, prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s (in %s): %v\n%s", prog, strings.Join(args, " "), dir, err, stderr.String())
	}
	return stdout.String(), nil
}
