package chain

import (
	"errors"
	"fmt"
)

var (
	// ErrPatchDoesNotApply is matched (errors.Is) by every *PatchError: the
	// patch cannot be applied to the tree as it is.
	ErrPatchDoesNotApply = errors.New("patch does not apply")
	// ErrUnsafePath is matched by a *PatchError whose patch names a path
	// that is absolute, has an empty, "." or ".." component, lies under
	// .git, or lies beyond a symbolic link in the tree.
	ErrUnsafePath = errors.New("unsafe path in patch")
	// ErrMalformedPatch is matched by a *PatchError whose patch cannot be
	// parsed as a unified (git) diff, or that names no file.
	ErrMalformedPatch = errors.New("malformed patch")
	// ErrUnsafeNAR is returned (wrapped) by UnpackNAR for an entry that is
	// not a fresh child of an unpacked directory (a duplicate, "..", ".",
	// an empty name) or that cannot be created inside the target.
	ErrUnsafeNAR = errors.New("unsafe NAR entry")
	// ErrCannotEvaluate: Nix could not evaluate the flake because its
	// inputs cannot be fetched (missing, offline). An auditor reports the
	// state as "could not check", not as failed.
	ErrCannotEvaluate = errors.New("flake cannot be evaluated here (inputs cannot be fetched)")
	// ErrEvaluation: Nix evaluated the flake and failed (syntax error,
	// missing attribute, evaluation error). The *NixError carries the tail
	// of Nix's stderr.
	ErrEvaluation = errors.New("flake evaluation failed")
	// ErrSourceMismatch: the source Nix evaluated does not hash to the tree
	// the caller gave.
	ErrSourceMismatch = errors.New("nix evaluated a source other than the given tree")
	// ErrNotGitFlake: a workspace is not a git repository with a
	// flake.nix at its top, so it has no git+file: flake source.
	ErrNotGitFlake = errors.New("not a git-repo flake")
)

// PatchError says which file of a patch failed to apply and why. It
// matches ErrPatchDoesNotApply with errors.Is, and unwraps to Err (which
// may match ErrUnsafePath or ErrMalformedPatch).
type PatchError struct {
	File string // the path as the patch names it ("" when no file is known)
	Err  error
}

func (e *PatchError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%v: %v", ErrPatchDoesNotApply, e.Err)
	}
	return fmt.Sprintf("%v: %s: %v", ErrPatchDoesNotApply, e.File, e.Err)
}

func (e *PatchError) Unwrap() error { return e.Err }

// Is makes every PatchError match ErrPatchDoesNotApply.
func (e *PatchError) Is(target error) bool { return target == ErrPatchDoesNotApply }

// NixError is a failed Nix invocation: the command, and the tail of its
// stderr. It unwraps to ErrCannotEvaluate or ErrEvaluation (or, for a Nix
// that could not be run at all, the exec error).
type NixError struct {
	Args   []string // nix's arguments
	Stderr string   // the last lines of nix's stderr
	Err    error
}

func (e *NixError) Error() string {
	return fmt.Sprintf("%v: nix %s:\n%s", e.Err, joinArgs(e.Args), e.Stderr)
}

func (e *NixError) Unwrap() error { return e.Err }
