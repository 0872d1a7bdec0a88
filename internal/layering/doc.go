// Package layering holds no code: its test reads `go list -deps` and keeps
// DESIGN.md's dependency line true. Packages depend downward only:
//
//	cmd/*, e2e → internal/* → verify → chain → closure, audit → attest → tlog, store → kv, schemas
//
// and no package outside cmd/, e2e/ and internal/ imports internal/, so
// that an outside program can use the store, the log and the auditor with
// the public API alone.
package layering
