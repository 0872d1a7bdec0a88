package attest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// PayloadType is the DSSE payloadType of every agentix attestation.
const PayloadType = "application/vnd.in-toto+json"

// MaxEnvelopeSize bounds the encoded size of an envelope accepted by
// ParseEnvelope (16 MiB).
const MaxEnvelopeSize = 16 << 20

// Envelope is a DSSE envelope (github.com/secure-systems-lab/dsse
// envelope.md). It is go-securesystemslib's type, so envelopes pass to and
// from that library unchanged.
type Envelope = dsse.Envelope

// Signature is one DSSE signature: the signer's key id (see KeyID) and the
// base64 signature over PAE(payloadType, payload).
type Signature = dsse.Signature

// ParseEnvelope decodes the JSON of one DSSE envelope. It is strict, because
// the exact bytes are the attestation's identity: unknown fields (member
// names match exactly, so "PayloadType" is one), repeated member names,
// invalid UTF-8, trailing data, an empty payloadType, payload or signature
// that is not base64, and inputs over MaxEnvelopeSize all fail with
// ErrMalformedEnvelope, naming the member. It does not check signatures or
// the payload type (see VerifyEnvelope).
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedEnvelope, len(b), MaxEnvelopeSize)
	}
	var env Envelope
	if err := decodeStrict(b, &env, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
	}
	if err := checkEnvelope(&env); err != nil {
		return nil, err
	}
	return &env, nil
}

func checkEnvelope(env *Envelope) error {
	_, _, err := decodeEnvelope(env)
	return err
}

// decodeEnvelope checks env's form (see ParseEnvelope) and returns the
// decoded payload and signatures, so that verification decodes each once.
func decodeEnvelope(env *Envelope) (payload []byte, sigs [][]byte, err error) {
	if env.PayloadType == "" {
		return nil, nil, fmt.Errorf("%w: empty payloadType", ErrMalformedEnvelope)
	}
	if env.Payload == "" {
		return nil, nil, fmt.Errorf("%w: empty payload", ErrMalformedEnvelope)
	}
	if payload, err = b64(env.Payload); err != nil {
		return nil, nil, fmt.Errorf("%w: payload: %v", ErrMalformedEnvelope, err)
	}
	sigs = make([][]byte, len(env.Signatures))
	for i, s := range env.Signatures {
		if s.Sig == "" {
			return nil, nil, fmt.Errorf("%w: signature %d is empty", ErrMalformedEnvelope, i)
		}
		if sigs[i], err = b64(s.Sig); err != nil {
			return nil, nil, fmt.Errorf("%w: signature %d (keyid %q) is not base64", ErrMalformedEnvelope, i, s.KeyID)
		}
	}
	return payload, sigs, nil
}

// b64 decodes standard or URL-safe base64, as DSSE allows.
func b64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.URLEncoding.DecodeString(s)
	}
	return b, err
}

// MarshalEnvelope encodes an envelope as compact JSON with the fields in
// the order payloadType, payload, signatures. The result is what is stored
// and logged; its raw-codec CID is the attestation's id.
func MarshalEnvelope(env *Envelope) ([]byte, error) {
	if err := checkEnvelope(env); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// dsseSigner adapts a Signer to go-securesystemslib's dsse.Signer.
type dsseSigner struct{ s *Signer }

func (d dsseSigner) Sign(_ context.Context, data []byte) ([]byte, error) { return d.s.Sign(data) }
func (d dsseSigner) KeyID() (string, error)                              { return d.s.keyID, nil }

// dsseVerifier adapts a Verifier to go-securesystemslib's dsse.Verifier.
type dsseVerifier struct{ v *Verifier }

func (d dsseVerifier) Verify(_ context.Context, data, sig []byte) error { return d.v.Verify(data, sig) }
func (d dsseVerifier) KeyID() (string, error)                           { return d.v.keyID, nil }
func (d dsseVerifier) Public() crypto.PublicKey                         { return d.v.pub }

// DSSESigner returns s as a go-securesystemslib dsse.Signer (keyid = KeyID).
func (s *Signer) DSSESigner() dsse.Signer { return dsseSigner{s} }

// DSSEVerifier returns v as a go-securesystemslib dsse.Verifier (keyid =
// KeyID).
func (v *Verifier) DSSEVerifier() dsse.Verifier { return dsseVerifier{v} }

// SignEnvelope signs payload with every signer and returns an envelope with
// one signature per signer, in order.
func SignEnvelope(ctx context.Context, payloadType string, payload []byte, signers ...*Signer) (*Envelope, error) {
	ps := make([]dsse.Signer, 0, len(signers))
	for _, s := range signers {
		ps = append(ps, dsseSigner{s})
	}
	es, err := dsse.NewEnvelopeSigner(ps...)
	if err != nil {
		return nil, err
	}
	return es.SignPayload(ctx, payloadType, payload)
}

// AddSignatures returns a copy of env with a signature by each signer added.
// A signer whose key id already signed env is skipped, so adding is
// idempotent; env itself is not modified.
func AddSignatures(ctx context.Context, env *Envelope, signers ...*Signer) (*Envelope, error) {
	if err := checkEnvelope(env); err != nil {
		return nil, err
	}
	payload, _ := env.DecodeB64Payload()
	var fresh []*Signer
	for _, s := range signers {
		if !hasKeyID(env, s.keyID) && !slices.Contains(fresh, s) {
			fresh = append(fresh, s)
		}
	}
	out := &Envelope{PayloadType: env.PayloadType, Payload: env.Payload, Signatures: slices.Clone(env.Signatures)}
	if len(fresh) == 0 {
		return out, nil
	}
	signed, err := SignEnvelope(ctx, env.PayloadType, payload, fresh...)
	if err != nil {
		return nil, err
	}
	out.Signatures = append(out.Signatures, signed.Signatures...)
	return out, nil
}

func hasKeyID(env *Envelope, keyID string) bool {
	for _, s := range env.Signatures {
		if s.KeyID == keyID {
			return true
		}
	}
	return false
}

// MergeEnvelopes combines the signatures of envelopes over the same
// payloadType and payload (compared after base64 decoding), as threshold
// approvals collected separately are. The result keeps the first envelope's
// encoding of the payload and, for each key id, the first signature seen;
// signatures without a key id are kept unless an identical one is present.
// Merging envelopes with different payloads fails with ErrPayloadMismatch.
// Merged signatures are not verified here (VerifyEnvelope does that).
func MergeEnvelopes(envs ...*Envelope) (*Envelope, error) {
	if len(envs) == 0 {
		return nil, fmt.Errorf("%w: nothing to merge", ErrMalformedEnvelope)
	}
	for i, e := range envs {
		if err := checkEnvelope(e); err != nil {
			return nil, fmt.Errorf("envelope %d: %w", i, err)
		}
	}
	first := envs[0]
	payload, _ := first.DecodeB64Payload()
	out := &Envelope{PayloadType: first.PayloadType, Payload: first.Payload}
	seenKey := map[string]bool{}
	seenSig := map[string]bool{}
	for i, e := range envs {
		if i > 0 {
			p, _ := e.DecodeB64Payload()
			if e.PayloadType != first.PayloadType || !bytes.Equal(p, payload) {
				return nil, fmt.Errorf("%w: envelope %d differs from envelope 0", ErrPayloadMismatch, i)
			}
		}
		for _, s := range e.Signatures {
			if s.KeyID != "" && seenKey[s.KeyID] || seenSig[s.Sig] {
				continue
			}
			seenKey[s.KeyID] = s.KeyID != ""
			seenSig[s.Sig] = true
			out.Signatures = append(out.Signatures, s)
		}
	}
	return out, nil
}
