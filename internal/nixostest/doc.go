// Package nixostest is a test-only helper: a tiny, self-contained
// nixos-config git repo (no flake inputs, no nixpkgs) shaped so that the
// proposals of the sample Agentix workspace (testdata/agentix/workspace-basic)
// apply to it, and helpers that drive real git and Nix on it.
//
// The base tree is flake.nix, modules/agentic-base.nix (exactly the content
// the sample patches' hunks and index lines expect, git blob e9dacd9),
// modules/devtools.nix and modules/fun.nix. flake.nix holds a module
// evaluator written in Nix: it walks `imports` from modules/agentic-base.nix
// (each module a function of { config, pkgs, ... }, given config = {} and
// pkgs = {}) and defines nixosConfigurations.<host>.config.system.build.toplevel
// as a derivation whose output lists the sorted module file names, so adding
// modules/foo.nix and then modules/bar.nix changes the toplevel's outPath
// (fixed by evaluation alone).
//
// Need skips the calling test when nix or git is missing and the CI
// environment variable is unset; with CI=true a missing tool fails the test.
package nixostest
