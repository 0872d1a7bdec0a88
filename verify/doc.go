// Package verify is the auditor's logic behind agentix-verify: it checks
// what an agentix-store node claims, from outside, with nothing but a trust
// policy (attest.Policy) and the auditor's own remembered state.
//
// What it promises:
//
//   - Bundle verifies an offline bundle (attest.VerifyBundle) and reports
//     each proven claim, or the failure with a stable reason code.
//   - CheckLog reads any C2SP tlog-tiles log (over HTTP or from a directory
//     of static tiles, through Tessera's client) and accepts its checkpoint
//     only when it is signed by the policy's key for its origin with the
//     witness quorum, has the same root as any checkpoint of that size this
//     auditor accepted (else ErrSplitView), is not smaller than the largest
//     accepted (else ErrRollback), and is proven consistent with it
//     (else ErrInconsistent). With Full it replays every entry: each must be
//     an attestation that verifies with the policy, checked in parallel on
//     all cores, and the leaf hashes must give the checkpoint's root
//     (else ErrRootMismatch).
//   - CheckNode audits a live node: its log, its latest running-config
//     attestation and the closure, applies, proposals and approvals behind
//     it, each attestation proven included in the log.
//
// Every check ends in a Report: proven claims, failures (something was
// checked and is wrong) and uncertain items (could not be checked: network,
// missing data, matching ErrUnavailable). A report proves its target only
// when it has neither failures nor uncertain items.
//
// What it trusts: the trust policy, the auditor state directory (State), and
// the libraries doing cryptography and hashing. It trusts nothing a node
// serves: every byte is checked against a signature, a hash or a proof
// before it counts, and a node's own verdicts (such as the boundary result in
// an audit-log attestation) are never taken as proof. The state directory
// records only checkpoints accepted by checks that fully held.
//
// Not yet done: recomputing the safety boundary from the raw audit log bytes
// of audit-log snapshots in CheckNode; such snapshots are reported as
// uncertain.
package verify
