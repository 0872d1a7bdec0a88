// Package e2e holds the end-to-end tests that run whole nodes: the real
// agentix-store and agentix-verify binaries, several daemons on loopback,
// real Nix, an Agentix workspace, witnesses and an auditor. It has no
// non-test code.
package e2e
