package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/go-json-experiment/json"
)

// nixFlags go before every nix subcommand's own arguments.
var nixFlags = []string{"--extra-experimental-features", "nix-command flakes"}

// evalFlags keep an evaluation offline, pure and free of lock-file writes.
var evalFlags = []string{"--offline", "--no-write-lock-file", "--option", "substituters", ""}

// stderrTail is how many lines of Nix's stderr an error keeps.
const stderrTail = 20

// Source is a flake source state.
type Source struct {
	NarHash   string // SRI, as locked.narHash
	Rev       string // git revision when the tree is clean ("" when dirty or not git)
	StorePath string // the source's store path (from nix flake metadata "path")
}

// Toplevel is an evaluated flake attribute.
type Toplevel struct{ Attr, DrvPath, OutPath string }

// DefaultAttr returns "nixosConfigurations.<host>.config.system.build.toplevel".
func DefaultAttr(host string) string {
	return "nixosConfigurations." + host + ".config.system.build.toplevel"
}

// flakeMetadata is the part of `nix flake metadata --json` we read.
type flakeMetadata struct {
	Locked struct {
		NarHash string `json:"narHash"`
		Rev     string `json:"rev"`
	} `json:"locked"`
	Path string `json:"path"`
}

// CheckGitFlake returns an error matching ErrNotGitFlake, naming what is
// missing, unless ws has a flake.nix and a .git at its top.
func CheckGitFlake(ws string) error {
	for _, name := range []string{"flake.nix", ".git"} {
		if _, err := os.Stat(filepath.Join(ws, name)); err != nil {
			return fmt.Errorf("workspace %s is %w (no %s)", ws, ErrNotGitFlake, name)
		}
	}
	return nil
}

// FlakeSource computes the git+file: flake source of the workspace ws (a
// git repo with a flake.nix, else ErrNotGitFlake) with real Nix: tracked
// and staged files only.
func FlakeSource(ctx context.Context, ws string) (Source, error) {
	abs, err := filepath.Abs(ws)
	if err != nil {
		return Source{}, err
	}
	if err := CheckGitFlake(abs); err != nil {
		return Source{}, err
	}
	md, err := metadata(ctx, "git+file://"+abs)
	if err != nil {
		return Source{}, err
	}
	return Source{NarHash: md.Locked.NarHash, Rev: md.Locked.Rev, StorePath: md.Path}, nil
}

// metadata runs `nix flake metadata --json ref`. A failure to parse
// flake.nix is ErrEvaluation; any other failure (an input that cannot be
// fetched or locked) is ErrCannotEvaluate.
func metadata(ctx context.Context, ref string) (flakeMetadata, error) {
	out, err := runNix(ctx, append(append([]string{"flake", "metadata", "--json"}, evalFlags...), ref), ErrCannotEvaluate)
	if err != nil {
		var ne *NixError
		if errors.As(err, &ne) && isParseError(ne.Stderr) {
			ne.Err = ErrEvaluation
		}
		return flakeMetadata{}, err
	}
	var md flakeMetadata
	if err := json.Unmarshal(out, &md); err != nil {
		return flakeMetadata{}, fmt.Errorf("chain: nix flake metadata %s printed %q: %w", ref, truncate(out), err)
	}
	if md.Locked.NarHash == "" || md.Path == "" {
		return flakeMetadata{}, fmt.Errorf("chain: nix flake metadata %s printed no locked.narHash or path: %q", ref, truncate(out))
	}
	return md, nil
}

// isParseError tells a flake.nix that Nix could not parse or interpret as
// a flake from one whose inputs could not be fetched.
func isParseError(stderr string) bool {
	for _, s := range []string{"syntax error", "undefined variable", "flake.nix' must be an attribute set", "unsupported attribute", "while parsing"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// Evaluate evaluates attr's drvPath and outPath of the flake in the plain
// directory dir with real Nix: `path:DIR`, never with a narHash (Nix would
// then evaluate whatever source with that hash it already has), offline,
// pure, and without writing a lock file into dir. It first locks the flake
// (`nix flake metadata`): a failure there because inputs cannot be fetched
// is ErrCannotEvaluate; and it checks that the source Nix took hashes to
// NarHash(dir) (ErrSourceMismatch otherwise). Any failure of the
// evaluation itself is ErrEvaluation with Nix's stderr tail (*NixError).
func Evaluate(ctx context.Context, dir, attr string) (Toplevel, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Toplevel{}, err
	}
	want, err := NarHash(abs)
	if err != nil {
		return Toplevel{}, err
	}
	return EvaluateHashed(ctx, abs, want, attr)
}

// EvaluateHashed is Evaluate of a tree the caller has just hashed: dir's
// NarHash is narHash. The source Nix takes must still hash to it.
func EvaluateHashed(ctx context.Context, dir, narHash, attr string) (Toplevel, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Toplevel{}, err
	}
	want := narHash
	ref := "path:" + abs
	md, err := metadata(ctx, ref)
	if err != nil {
		return Toplevel{}, err
	}
	if md.Locked.NarHash != want {
		return Toplevel{}, fmt.Errorf("%w: %s: nix took %s (%s), the tree hashes to %s", ErrSourceMismatch, abs, md.Locked.NarHash, md.Path, want)
	}
	return evaluate(ctx, ref, attr)
}

// EvaluateFlake is Evaluate for a flake reference (e.g. "git+file:///ws"),
// for the node side; the source is whatever Nix resolves ref to.
func EvaluateFlake(ctx context.Context, ref, attr string) (Toplevel, error) {
	if _, err := metadata(ctx, ref); err != nil {
		return Toplevel{}, err
	}
	return evaluate(ctx, ref, attr)
}

// evaluate runs one `nix eval --json REF#ATTR --apply` printing
// [drvPath, outPath].
func evaluate(ctx context.Context, ref, attr string) (Toplevel, error) {
	args := append([]string{"eval", "--json"}, evalFlags...)
	args = append(args, ref+"#"+attr, "--apply", "d: [ d.drvPath d.outPath ]")
	out, err := runNix(ctx, args, ErrEvaluation)
	if err != nil {
		return Toplevel{}, err
	}
	var paths []string
	if err := json.Unmarshal(out, &paths); err != nil || len(paths) != 2 ||
		!strings.HasPrefix(paths[0], "/") || !strings.HasSuffix(paths[0], ".drv") || !strings.HasPrefix(paths[1], "/") {
		return Toplevel{}, fmt.Errorf("%w: %s#%s is not a derivation: nix printed %q", ErrEvaluation, ref, attr, truncate(out))
	}
	return Toplevel{Attr: attr, DrvPath: paths[0], OutPath: paths[1]}, nil
}

// runNix runs nix with args; a failure is a *NixError wrapping kind.
func runNix(ctx context.Context, args []string, kind error) ([]byte, error) {
	full := append(append([]string{}, nixFlags...), args...)
	cmd := exec.CommandContext(ctx, "nix", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ctx.Err() != nil {
			return nil, fmt.Errorf("chain: running nix %s: %w", joinArgs(full), err)
		}
		return nil, &NixError{Args: full, Stderr: tail(stderr.String()), Err: kind}
	}
	return stdout.Bytes(), nil
}

// tail keeps the last stderrTail lines of s, without Nix's warnings.
func tail(s string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(l, "warning: ") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > stderrTail {
		keep = keep[len(keep)-stderrTail:]
	}
	return strings.Join(keep, "\n")
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// Build realises attr of the flake in the plain directory dir (path:DIR,
// checked as Evaluate checks it) with real Nix, offline, and returns the
// output path. An auditor rebuilds a toplevel with it to compare every
// path's NAR hash with the node's (reproducibility).
func Build(ctx context.Context, dir, attr string) (string, error) {
	top, err := Evaluate(ctx, dir, attr)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	args := append([]string{"build", "--no-link", "--json"}, evalFlags...)
	out, err := runNix(ctx, append(args, "path:"+abs+"#"+attr), ErrEvaluation)
	if err != nil {
		return "", err
	}
	var res []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 || res[0].Outputs["out"] == "" {
		return "", fmt.Errorf("%w: nix build %s#%s printed %q", ErrEvaluation, abs, attr, truncate(out))
	}
	if got := res[0].Outputs["out"]; got != top.OutPath {
		return "", fmt.Errorf("%w: nix build %s#%s gave %s, evaluation said %s", ErrEvaluation, abs, attr, got, top.OutPath)
	}
	return top.OutPath, nil
}
