// Package clitest builds the agentix-store and agentix-verify binaries for
// the tests that run them as a user would (cmd/agentix-store,
// cmd/agentix-verify, e2e), once per source state rather than once per
// package or test.
//
// # Promises
//
// Binaries returns binaries built from the module's source as it is when
// called: the cache directory is named by a digest of every file of the
// module outside hidden directories and bin/ (sources, go.mod, go.sum and
// embedded files), so an edit is always rebuilt, and parallel test packages
// share one build through a file lock. Test-only package.
package clitest
