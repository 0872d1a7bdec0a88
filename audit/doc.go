// Package audit ingests Agentix audit logs and proposal patches and
// evaluates the safety boundary over them.
//
// # Input
//
// Agentix writes <workspace>/.agentix/audit.jsonl, one JSON object per line
// (keys sorted; timestamp, action and result always present, other keys per
// action) and saves proposals as unified diffs under .agentix/proposals/.
// [Reader] returns every complete ("\n"-terminated) line with its exact
// bytes, its 1-based number, byte offset and RFC 6962 leaf hash; a line
// that does not parse is returned with a *[LineError] and is never
// dropped, and a line over MaxLineSize is hashed as it streams, returned
// with ErrLineTooLong, and reading goes on. Bytes after the last newline
// are a line still being written and are left for a later read. Unknown
// keys and unknown actions are normal. Each line has one strict reading
// (github.com/go-json-experiment/json: exact-case keys, no duplicate
// member names, valid UTF-8); a duplicate key, or a key equal to one the
// boundary reads case-insensitively but not exactly, is ErrAmbiguousKey,
// since readers disagree on such a line. Every workspace read (the log,
// proposals, any patch the log names) goes through an os.Root: a path
// that leaves the workspace, by symlink or "..", is not read, and is a
// violation naming it ([OutsideError]). Paths in the log are
// absolute paths of the workspace where Agentix ran; [ResolvePath] keeps
// the part from ".agentix/" on, so a moved or copied workspace still
// resolves. [ParseDiff] reads diff headers (git and plain unified format),
// skipping hunks by their counts.
//
// # The log as a Merkle log
//
// Line i (without its newline) is leaf i-1 of an RFC 6962 tree
// (transparency-dev/merkle, rfc6962 hasher). [Tree] keeps it as a compact
// range, so appending k lines and producing the consistency proof from the
// previous size costs O(k + log N).
//
// # Ingest
//
// [Ingester.Ingest] stores a workspace's log in the node's block store as
// an AuditLogSnapshot record (schemas package) linking the exact bytes as a
// UnixFS file, the line count and the root. Its state lives in badger under
// kv.PrefixAudit. Re-ingesting an unchanged file stores nothing. A grown
// file is ingested incrementally: the continuation check reads the last
// accepted line at its offset and the file size (and, with VerifyPrefix,
// re-hashes the whole accepted prefix against a SHA-256 whose state is
// carried from ingest to ingest); only the new bytes are then read, stored
// as a UnixFS file, and joined to the previous bytes by a UnixFS file node,
// and the new snapshot carries the consistency proof from the previous one.
// The default check does not see an in-place edit that keeps every line
// length and the last line (a same-length edit or a swap of equal-length
// lines); VerifyPrefix does, at a cost proportional to the file. A file that
// does not continue the accepted snapshot is compared line by line with the
// stored bytes; the first differing line and the kind (truncated, edited,
// removed, reordered) are reported in a *[TamperError], the refused
// version is stored and recorded as [Evidence], and the accepted snapshot
// stays the head.
//
// An ingest that finds no new line still re-evaluates rules 2 and 5 with
// the approvals and running configs known now; when the verdict differs
// from the one attested for the accepted snapshot, or applies have newly
// met the approval threshold, the snapshot is attested again and those
// applies get their apply/v1. Each apply/v1 id is recorded with its
// workspace and line, so rule 5 resolves the ids a running-config/v1 names.
//
// Every patch a line names is read when that line is ingested, stored
// (UnixFS bytes plus a Patch record with sha256 and the files its diff
// headers touch), and its sha256 remembered: that is "the proposal stored
// then" of rule 1.
//
// # Safety boundary
//
// [Evaluator] checks the rules of DESIGN.md as lines stream in; violations
// are *[Violation] values naming the rule, the 1-based audit line and the
// workspace-relative patch, matching their reason with errors.Is:
//
//  1. an apply with result "applied" names a patch saved (proposal_saved)
//     by an earlier controller_run/worktree_run with source_modified false,
//     whose bytes at apply time hash as when it was proposed;
//  2. with approvers in the [Policy], that patch has approvals by at least
//     threshold distinct approver keys, recorded no later than the apply;
//     with none (single-operator mode, the default) the apply line stands as
//     the approval and the result says so;
//  3. no agent-run event (any action but apply, rebuild, review, approve)
//     has source_modified, switched_system or requires_sudo other than
//     exactly false or absent (checked on any JSON object line, even one
//     otherwise unparseable), no line has a duplicate or case-variant key,
//     the audit log itself is inside the workspace, and no policy-denied
//     request is later applied;
//  4. the log continues every accepted snapshot (found by the Ingester),
//     and, in [CheckWorkspace], every attested snapshot the auditor holds:
//     the RFC 6962 consistency proof from the attested root at N lines to
//     the root recomputed over the current N' lines must verify; with the
//     snapshot's bytes ([FileFromCAR] reads them from a bundle's CAR) the
//     first differing line is named;
//  5. running-config attestations link only to applies that hold 1 and 2
//     (and, when the apply attestation names a patch sha256, to applies of
//     exactly those bytes); an apply id that resolves to no apply breaks it.
//
// A policy file only tightens the built-in policy.
//
// # Trust
//
// The package trusts the node's own store and database, and the workspace
// files only as evidence of what they contain at the moment they are read.
// Approvals count only after their signatures verified against approver
// keys the caller supplies ([VerifyApprovals]). Line and patch contents are
// outside input: parsers are fuzzed and bounded (MaxLineSize,
// MaxPatchSize).
package audit
