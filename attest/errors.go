package attest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentix/agentix-store/schemas"
)

// Errors returned by parsing and verification. Each names one way an
// attestation can be wrong; test for them with errors.Is. Returned errors wrap
// them with a message naming the key, field or index concerned.
var (
	// ErrMalformedEnvelope: the bytes are not a DSSE envelope in JSON
	// (missing fields, bad base64, oversized, trailing data).
	ErrMalformedEnvelope = errors.New("malformed DSSE envelope")
	// ErrWrongPayloadType: the envelope's payloadType is not PayloadType.
	ErrWrongPayloadType = errors.New("wrong DSSE payloadType")
	// ErrNoSignature: the envelope carries no signature.
	ErrNoSignature = errors.New("envelope has no signature")
	// ErrTamperedPayload: a signature by a trusted key does not verify over
	// the envelope's payloadType and payload, so one of them (or the
	// signature) was altered after signing.
	ErrTamperedPayload = errors.New("signature does not match payload (tampered payload or signature)")
	// ErrUntrustedKey: no signature on the envelope is by a key the trust
	// policy trusts for this predicate.
	ErrUntrustedKey = errors.New("signed by untrusted key")
	// ErrBelowThreshold: fewer distinct trusted keys signed than the policy's
	// threshold requires.
	ErrBelowThreshold = errors.New("too few distinct trusted signers")
	// ErrDuplicateSigner: one key signed more than once and the repeats
	// would have been needed to reach the threshold. Returned together with
	// ErrBelowThreshold (a *ThresholdError matches both).
	ErrDuplicateSigner = errors.New("one key signed more than once")
	// ErrPayloadMismatch: envelopes being merged do not carry the same
	// payloadType and payload.
	ErrPayloadMismatch = errors.New("envelopes carry different payloads")
	// ErrBadStatement: the payload is not a valid in-toto Statement v1.
	ErrBadStatement = errors.New("invalid in-toto statement")
	// ErrUnknownPredicate: the predicateType is not one of the agentix
	// predicate types (see PredicateTypePrefix).
	ErrUnknownPredicate = schemas.ErrUnknownPredicate
	// ErrSchema: the predicate violates its predicate type's JSON Schema.
	ErrSchema = schemas.ErrSchema
	// ErrBadPolicy: the trust policy file is invalid.
	ErrBadPolicy = errors.New("invalid trust policy")
	// ErrBadBundle: the bundle file is not a valid bundle.
	ErrBadBundle = errors.New("malformed bundle")
	// ErrInclusionProof: the bundle's inclusion proof does not prove the
	// envelope is at the stated index of the checkpoint's tree.
	ErrInclusionProof = errors.New("inclusion proof does not verify")
	// ErrCheckpoint: the checkpoint is not signed by the policy's key for
	// the log, names an unknown origin, or is malformed.
	ErrCheckpoint = errors.New("checkpoint does not verify")
	// ErrWitnessQuorum: fewer distinct trusted witnesses cosigned the
	// checkpoint than the policy's quorum.
	ErrWitnessQuorum = errors.New("witness quorum not met")
	// ErrBlockMismatch: a block's bytes do not hash to its CID (returned
	// together with ErrBadBundle for a bundle's CAR).
	ErrBlockMismatch = errors.New("block does not match its CID")
	// ErrNotFound: no such attestation.
	ErrNotFound = errors.New("attestation not found")
)

// ThresholdError reports a signature count below a threshold. It matches
// ErrBelowThreshold, and also ErrDuplicateSigner when repeated signatures by
// one key were present (and were not counted).
type ThresholdError struct {
	Role       string   // "node" or "approver"
	Need, Have int      // threshold and distinct trusted keys that signed
	Duplicates []string // key ids that signed more than once
}

func (e *ThresholdError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s threshold %d, %d distinct trusted key(s) signed", ErrBelowThreshold, e.Role, e.Need, e.Have)
	if len(e.Duplicates) > 0 {
		fmt.Fprintf(&b, "; %v (counted once): %s", ErrDuplicateSigner, strings.Join(e.Duplicates, ", "))
	}
	return b.String()
}

// Unwrap lets errors.Is match ErrBelowThreshold and ErrDuplicateSigner.
func (e *ThresholdError) Unwrap() []error {
	if len(e.Duplicates) > 0 {
		return []error{ErrBelowThreshold, ErrDuplicateSigner}
	}
	return []error{ErrBelowThreshold}
}
