// Package chain holds the building blocks of a node's configuration chain
// (issue 14): the source states S0 → S1 → … of its NixOS configuration, and
// the means to rebuild, hash and evaluate each of them.
//
// # States
//
// S0, the genesis state, is the tree of a git-repo flake (an operator's
// nixos-config) at a commit, as `git archive` writes it. S(k) is S(k-1) with
// the patch of the k-th approved apply applied to it, with git-apply
// semantics (ApplyPatch). A state's identity is its NAR hash, exactly as
// Nix computes it for the flake's source: NarHash of the tree, which equals
// `nix hash path` of the tree and, on the node, the `locked.narHash` of
// `nix flake metadata --json git+file://WS` when the workspace WS has the
// patches applied with `git apply --index` (the git+file: source holds
// tracked and staged files only, so untracked files such as .agentix/ stay
// out until a patch adds one and it is staged).
//
// # What an auditor does
//
// It rebuilds every state from S0 and the patches in a plain directory
// (ApplyPatch), hashes it (NarHash; it must equal the attested narHash) and
// evaluates it with its own Nix (Evaluate) to get the toplevel's drvPath
// and outPath. Evaluate takes the tree it was given, as `path:DIR`: never
// `path:DIR?narHash=H`, for with H already in the store Nix silently
// evaluates the stored content instead of DIR. Evaluate checks that the
// source Nix took hashes to NarHash(DIR).
//
// # What is trusted
//
// ApplyPatch and UnpackNAR parse outside input (patches and NARs a node
// gave) and trust none of it: every path they write is confined to the
// target tree through os.Root, a path with "..", an absolute path, a path
// under .git, or a path beyond a symbolic link is refused, and ApplyPatch
// is all-or-nothing. NarHash, DumpNAR and DiffTrees trust the local file
// system they read. FlakeSource, Evaluate and EvaluateFlake trust the local
// `nix` (run with --offline, --no-write-lock-file and no substituters) and
// nothing the node says about the result.
//
// # Errors
//
// A patch that does not apply is a *PatchError naming the file, matching
// ErrPatchDoesNotApply (and ErrUnsafePath or ErrMalformedPatch where that is
// why). An evaluation that cannot happen here because the flake's inputs
// cannot be fetched is ErrCannotEvaluate (the auditor reports "could not
// check"); any other evaluation failure is ErrEvaluation; both come as a
// *NixError carrying the tail of Nix's stderr.
package chain
