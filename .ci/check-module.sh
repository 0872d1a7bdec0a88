#!/usr/bin/env bash
# Checks flake.nix with real Nix but without nixpkgs (CI has no network):
# it must parse, and the NixOS module's option declarations and the
# service it derives must be as .ci/check-module.nix expects (a stub lib).
# What this leaves unchecked (the systemd unit's validity, the real module
# system's type merging, the system build) needs nixpkgs: `nix flake check`.
set -euo pipefail
cd "$(dirname "$0")/.."
nix-instantiate --parse flake.nix >/dev/null
nix-instantiate --eval --strict --json .ci/check-module.nix
echo
