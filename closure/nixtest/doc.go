// Package nixtest is a test-only helper for tests that drive a real Nix
// (Debian's nix-bin 2.8 or newer), offline and as root.
//
// Require skips the calling test when Nix is not installed and the CI
// environment variable is unset; with CI set (as .ci/run sets it, after
// installing nix-bin) a missing Nix fails the test instead, so CI never
// silently skips the real-Nix tests.
package nixtest
