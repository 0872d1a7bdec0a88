package attest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/agentix/agentix-store/schemas"
)

// KeySet is a set of trusted verifiers, distinct by key id.
type KeySet struct {
	byID  map[string]*Verifier
	list  []*Verifier
	order []string
}

// NewKeySet returns the set of the given verifiers; repeats of one key id
// are kept once.
func NewKeySet(vs ...*Verifier) *KeySet {
	ks := &KeySet{byID: map[string]*Verifier{}}
	for _, v := range vs {
		if _, ok := ks.byID[v.keyID]; ok {
			continue
		}
		ks.byID[v.keyID] = v
		ks.list = append(ks.list, v)
		ks.order = append(ks.order, v.keyID)
	}
	return ks
}

// Len returns the number of keys.
func (ks *KeySet) Len() int { return len(ks.list) }

// List returns the verifiers in insertion order.
func (ks *KeySet) List() []*Verifier { return slices.Clone(ks.list) }

// Has reports whether the key id is in the set.
func (ks *KeySet) Has(keyID string) bool { _, ok := ks.byID[keyID]; return ok }

// Get returns the verifier of a key id in the set.
func (ks *KeySet) Get(keyID string) (*Verifier, bool) {
	if ks == nil {
		return nil, false
	}
	v, ok := ks.byID[keyID]
	return v, ok
}

// VerifySignatures checks env's signatures against the keys in ks, with the
// semantics of go-securesystemslib's dsse.EnvelopeVerifier (a signature
// naming a key id is checked only with that key, one without a key id with
// every key; each key counts once), and returns the decoded payload and the
// ids of the distinct keys in ks whose signatures verify, in the envelope's
// signature order. It fails unless at least threshold (at least 1) distinct
// keys signed: with ErrTamperedPayload when a signature naming a key in ks
// does not verify and no key in ks verified, with ErrUntrustedKey when no
// signature names a key in ks, and with a *ThresholdError when some but too
// few did. It does not look at the payloadType or payload.
func VerifySignatures(env *Envelope, ks *KeySet, threshold int) (signers []string, payload []byte, err error) {
	if env == nil {
		return nil, nil, fmt.Errorf("%w: nil envelope", ErrMalformedEnvelope)
	}
	if len(env.Signatures) == 0 {
		return nil, nil, ErrNoSignature
	}
	payload, sigs, err := decodeEnvelope(env)
	if err != nil {
		return nil, nil, err
	}
	return ks.verify(env, payload, sigs, threshold)
}

// verify is VerifySignatures over an envelope already decoded by
// decodeEnvelope. The PAE is built once and every signature is checked with
// its key directly (Verifier.Verify).
func (ks *KeySet) verify(env *Envelope, payload []byte, sigs [][]byte, threshold int) ([]string, []byte, error) {
	if len(env.Signatures) == 0 {
		return nil, nil, ErrNoSignature
	}
	if ks.Len() == 0 {
		return nil, nil, fmt.Errorf("%w: no keys are trusted for this envelope (signed by %s)", ErrUntrustedKey, claimed(env))
	}
	pae := dsse.PAE(env.PayloadType, payload)
	var signers []string
	for i, s := range env.Signatures {
		if s.KeyID != "" {
			v, ok := ks.byID[s.KeyID]
			if ok && !slices.Contains(signers, v.keyID) && v.Verify(pae, sigs[i]) == nil {
				signers = append(signers, v.keyID)
			}
			continue
		}
		for _, v := range ks.list {
			if !slices.Contains(signers, v.keyID) && v.Verify(pae, sigs[i]) == nil {
				signers = append(signers, v.keyID)
				break
			}
		}
	}
	if len(signers) == 0 {
		return nil, nil, ks.diagnose(env)
	}
	if len(signers) < max(threshold, 1) {
		return signers, payload, &ThresholdError{Role: "key set", Need: threshold, Have: len(signers), Duplicates: duplicates(env, ks)}
	}
	return signers, payload, nil
}

// diagnose explains why no signature on env verified with a key in ks.
func (ks *KeySet) diagnose(env *Envelope) error {
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return fmt.Errorf("%w: payload: %v", ErrMalformedEnvelope, err)
	}
	pae := dsse.PAE(env.PayloadType, payload)
	var bad, untrusted []string
	for i, s := range env.Signatures {
		sig, err := b64(s.Sig)
		if err != nil {
			return fmt.Errorf("%w: signature %d is not base64", ErrMalformedEnvelope, i)
		}
		if v, ok := ks.byID[s.KeyID]; ok {
			if v.Verify(pae, sig) != nil {
				bad = append(bad, s.KeyID)
			}
			continue
		}
		untrusted = append(untrusted, cmp(s.KeyID, "(no keyid)"))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: signature by trusted key %s does not verify over payloadType %q and the payload", ErrTamperedPayload, strings.Join(bad, ", "), env.PayloadType)
	}
	return fmt.Errorf("%w: signed by %s, none of which is trusted (trusted: %s)", ErrUntrustedKey, strings.Join(untrusted, ", "), strings.Join(ks.order, ", "))
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func claimed(env *Envelope) string {
	var ids []string
	for _, s := range env.Signatures {
		ids = append(ids, cmp(s.KeyID, "(no keyid)"))
	}
	return strings.Join(ids, ", ")
}

// duplicates lists the key ids in ks named by more than one signature.
func duplicates(env *Envelope, ks *KeySet) []string {
	n := map[string]int{}
	var out []string
	for _, s := range env.Signatures {
		if ks.Has(s.KeyID) {
			n[s.KeyID]++
			if n[s.KeyID] == 2 {
				out = append(out, s.KeyID)
			}
		}
	}
	return out
}

// Result is what VerifyEnvelope established.
type Result struct {
	Statement     *Statement
	PredicateType string
	Role          string   // "node" or "approver": whose keys counted
	Threshold     int      // distinct keys of Role required
	Signers       []string // distinct trusted key ids of Role that signed
}

// VerifyEnvelope verifies an agentix attestation against a trust policy, in
// this order, failing with the first error met:
//
//  1. the envelope is well formed (ErrMalformedEnvelope) and its payloadType
//     is PayloadType (ErrWrongPayloadType);
//  2. at least one signature verifies with a key the policy trusts, node or
//     approver (ErrNoSignature, ErrTamperedPayload, ErrUntrustedKey);
//  3. the payload is an in-toto Statement v1 whose subjects each carry an
//     ipfs://<cid> URI and a sha256 digest (ErrBadStatement), with a known
//     agentix predicate type (ErrUnknownPredicate);
//  4. the keys of the predicate type's role (approver keys for approval/v1,
//     node keys otherwise) that signed, counted once per key, reach the
//     role's threshold (ErrUntrustedKey when none did, else a *ThresholdError
//     matching ErrBelowThreshold, and ErrDuplicateSigner when one key signed
//     more than once);
//  5. the predicate satisfies its JSON Schema (ErrSchema).
//
// Signatures that do not verify, or are by keys outside the role, are
// ignored once the threshold is met.
func VerifyEnvelope(env *Envelope, p *Policy) (*Result, error) {
	if env == nil {
		return nil, fmt.Errorf("%w: nil envelope", ErrMalformedEnvelope)
	}
	payload, sigs, err := decodeEnvelope(env)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongPayloadType, env.PayloadType, PayloadType)
	}
	signers, _, err := p.all.verify(env, payload, sigs, 1)
	if err != nil {
		return nil, err
	}
	st, pred, err := parseStatement(payload)
	if err != nil {
		return nil, err
	}
	if err := st.checkSubjects(); err != nil {
		return nil, err
	}
	if !knownPredicate(st.PredicateType) {
		_, err := schemas.PredicateSchema(st.PredicateType) // names the unknown type
		return nil, err
	}
	role, ks, threshold := p.roleFor(st.PredicateType)
	res := &Result{Statement: st, PredicateType: st.PredicateType, Role: role, Threshold: threshold}
	for _, id := range signers {
		if ks.Has(id) {
			res.Signers = append(res.Signers, id)
		}
	}
	if len(res.Signers) == 0 {
		if ks.Len() == 0 {
			return nil, fmt.Errorf("%w: %s requires %s keys and the policy names none (signed by %s)", ErrUntrustedKey, st.PredicateType, role, strings.Join(signers, ", "))
		}
		return nil, fmt.Errorf("%w: %s must be signed by %s keys; signed by %s", ErrUntrustedKey, st.PredicateType, role, strings.Join(signers, ", "))
	}
	if len(res.Signers) < threshold {
		return nil, &ThresholdError{Role: role, Need: threshold, Have: len(res.Signers), Duplicates: duplicates(env, ks)}
	}
	if err := schemas.ValidatePredicateValue(st.PredicateType, pred); err != nil {
		return nil, err
	}
	return res, nil
}

// VerifyEnvelopeBytes parses (ParseEnvelope) and verifies (VerifyEnvelope)
// an encoded envelope.
func VerifyEnvelopeBytes(b []byte, p *Policy) (*Result, error) {
	env, err := ParseEnvelope(b)
	if err != nil {
		return nil, err
	}
	return VerifyEnvelope(env, p)
}
