// Package cli holds what agentix-store and agentix-verify share about being
// a command: the usage error (exit status 2) and how command groups refuse
// an unknown subcommand.
//
// # Promises
//
// An error built with Usagef, or one that wraps a *UsageError, is a mistake
// in how the command was called: both CLIs exit with status 2 for it, and
// for nothing else. A command that only groups subcommands never exits 0
// when given an unknown subcommand or none.
package cli
