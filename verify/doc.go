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
//     it, each attestation proven included in the log. Every audit-log/v1
//     snapshot in the log is checked from the raw audit log bytes the
//     node serves (fetched as a CAR, every block hash-checked, reassembled,
//     the attested sha256 checked): the RFC 6962 root over the lines and
//     the line count must be the attested ones (else ErrAuditRoot), each
//     snapshot must be consistent with the previous one of its workspace
//     (else an *AppendOnlyError naming the first differing line and
//     whether lines were truncated, edited, reordered or removed), and the
//     safety boundary is recomputed over the latest snapshot of each
//     workspace with the auditor's policy (audit.WithTrustPolicy): patch
//     hashes from the node's proposal/v1 and apply/v1 attestations, each
//     re-checked against the Patch record and bytes; approvals from the
//     node's approval/v1 envelopes verified against the trust policy's
//     approver keys; rule 5 against the latest running config. Each
//     violation is a failure naming its audit line (Finding.Line).
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
// Approvals carry no trusted time: they count as recorded before every
// apply (rule 2's "signed before the apply" cannot be checked from outside).
package verify
