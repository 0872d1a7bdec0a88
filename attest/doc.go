// Package attest makes, publishes and verifies agentix attestations: in-toto
// Statement v1 payloads in DSSE envelopes, stored as blocks, appended to the
// node's transparency log, indexed, and packed into bundles that an auditor
// verifies offline with nothing but a trust policy.
//
// # Keys
//
// Attestation keys are Ed25519 (the default) or ECDSA P-256, held as PEM
// files: private keys as unencrypted PKCS#8 ("PRIVATE KEY", written 0600 and
// never overwritten), public keys as PKIX ("PUBLIC KEY"). Signing and
// verification go through sigstore/sigstore's signature package; Ed25519
// signs the DSSE pre-authentication encoding (PAE) itself, ECDSA signs its
// SHA-256 with an ASN.1 DER signature. A key's id (KeyID) is the lowercase
// hex SHA-256 of its PKIX DER encoding; it is the DSSE "keyid" of every
// signature and the name of the key in trust policies and indexes.
//
// # Envelopes and statements
//
// An attestation is a DSSE envelope with payloadType PayloadType
// ("application/vnd.in-toto+json") whose payload is an in-toto Statement v1.
// Every subject names content by "ipfs://<cid>" and carries its "sha256"
// digest. The predicate type is one of the agentix types under
// PredicateTypePrefix (audit-log, proposal, approval, apply, running-config,
// all v1), and the predicate must satisfy that type's JSON Schema (package
// schemas), both when a statement is made (NewStatement) and when it is
// verified. Statements are encoded deterministically, so several approvers
// building the same approval sign the same bytes; their envelopes merge
// (MergeEnvelopes, AddSignatures) into one envelope with several signatures.
// Envelopes interoperate with go-securesystemslib's dsse package and
// statements with the in-toto attestation library; the tests check both.
//
// Every JSON input (statement, predicate, envelope, bundle, trust policy) is
// read by one strict decoder, encoding/json v2 semantics through
// github.com/go-json-experiment/json: member names match exactly, and a
// repeated member name, invalid UTF-8 or trailing data fails, naming the
// member. Statements, subjects, envelopes, bundles and policies also refuse
// members they do not define ("PredicateType" is one), as the in-toto
// library's protojson does for statements; FuzzStatementAgreesWithInToto
// checks that whatever ParseStatement accepts, that library accepts and
// reads the same way.
//
// # Identity, log entry, index
//
// The attestation's id is the CIDv1 (raw codec, sha2-256) of the exact
// envelope bytes (ID). Publisher.Publish stores those bytes as a block and
// appends the same bytes to the log: the log entry IS the envelope, so an
// RFC 6962 inclusion proof of leaf SHA-256(0x00 || envelope) proves the
// attestation was logged, and a log reader can read every attestation from
// the log alone. The index (badger, key space kv.PrefixAttest) finds
// attestations by subject CID, subject sha256, subject name (e.g. a store
// path), predicate type and the key ids the signatures name.
//
// # Verification and what it trusts
//
// VerifyEnvelope trusts only the keys of a Policy: node keys for the node's
// own predicates, approver keys (m-of-n, each key counted once) for
// approval/v1. Every way an attestation can be wrong has its own error
// (ErrTamperedPayload, ErrUntrustedKey, ErrWrongPayloadType,
// ErrBelowThreshold with ErrDuplicateSigner, ErrSchema, ErrUnknownPredicate,
// ErrBadStatement, ErrMalformedEnvelope). VerifyBundle additionally trusts
// only the policy's log keys and witness keys: the checkpoint must be signed
// by the log named by its origin and cosigned by a quorum of distinct
// witnesses, and the inclusion proof must place the envelope in that tree.
// A bundle proves inclusion in one checkpoint; detecting a fork or rollback
// across checkpoints (consistency with checkpoints seen before) is the
// auditor's job (agentix-verify keeps that state).
//
// Publish does not verify signatures (the node publishing may not hold a
// policy); it enforces everything else that VerifyEnvelope checks, so
// nothing malformed reaches the log. Index signer entries are therefore
// claims, to be checked with VerifyEnvelope.
package attest
