package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// stdlibVerifier is a dsse.Verifier written against the standard library
// only, so the outside check does not run through our verification code.
type stdlibVerifier struct{ pub crypto.PublicKey }

func (v stdlibVerifier) Verify(_ context.Context, data, sig []byte) error {
	switch k := v.pub.(type) {
	case ed25519.PublicKey:
		if ed25519.Verify(k, data, sig) {
			return nil
		}
	case *ecdsa.PublicKey:
		h := sha256.Sum256(data)
		if ecdsa.VerifyASN1(k, h[:], sig) {
			return nil
		}
	}
	return errors.New("bad signature")
}

func (v stdlibVerifier) KeyID() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(v.pub)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:]), nil
}

func (v stdlibVerifier) Public() crypto.PublicKey { return v.pub }

// TestOutsideVerification has go-securesystemslib's DSSE verifier check our
// envelopes with our public keys, and the in-toto library (protojson +
// Validate) check our statements.
func TestOutsideVerification(t *testing.T) {
	for _, alg := range []string{AlgEd25519, AlgECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			s1, s2 := testKey(t, alg), testKey(t, alg)
			payload := approvalStatement(t, "patch "+alg)
			env := sign(t, PayloadType, payload, s1)
			env, err := AddSignatures(context.Background(), env, s2)
			if err != nil {
				t.Fatal(err)
			}
			b, err := MarshalEnvelope(env)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := dsse.NewMultiEnvelopeVerifier(2, stdlibVerifier{s1.PublicKey()}, stdlibVerifier{s2.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
			accepted, body, err := ev.VerifyAndDecode(context.Background(), parsed)
			if err != nil {
				t.Fatalf("dsse rejects our envelope: %v", err)
			}
			if len(accepted) != 2 || accepted[0].KeyID != s1.KeyID() || accepted[1].KeyID != s2.KeyID() {
				t.Fatalf("dsse accepted %+v, want key ids %s, %s", accepted, s1.KeyID(), s2.KeyID())
			}
			var st ita.Statement
			if err := protojson.Unmarshal(body, &st); err != nil {
				t.Fatalf("in-toto cannot decode our statement: %v", err)
			}
			if err := st.Validate(); err != nil {
				t.Fatalf("in-toto rejects our statement: %v", err)
			}
			if st.GetPredicateType() != PredicateApproval || !strings.HasPrefix(st.GetSubject()[0].GetUri(), "ipfs://bafkrei") ||
				len(st.GetSubject()[0].GetDigest()["sha256"]) != 64 {
				t.Fatalf("statement as in-toto reads it: %v", &st)
			}

			// And the outside verifier rejects a tampered payload.
			bad := *parsed
			bad.Payload = base64.StdEncoding.EncodeToString(append(body[:len(body)-1:len(body)-1], ' ', '}'))
			if _, err := ev.Verify(context.Background(), &bad); err == nil {
				t.Fatal("dsse accepted a tampered payload")
			}
		})
	}
}

// TestVerifyEnvelopeRejections is the rejection matrix: each kind of bad
// attestation fails with its own error.
func TestVerifyEnvelopeRejections(t *testing.T) {
	node, a1, a2, stranger := testKey(t, ""), testKey(t, ""), testKey(t, AlgECDSAP256), testKey(t, "")
	pol := testPolicy(t, []*Signer{node}, []*Signer{a1, a2}, 2)
	proposal := proposalStatement(t, "patch-1")
	approval := approvalStatement(t, "patch-1")

	tampered := sign(t, PayloadType, proposal, node)
	{
		p, _ := tampered.DecodeB64Payload()
		p = []byte(strings.Replace(string(p), "controller_run", "worktree_run", 1))
		tampered.Payload = base64.StdEncoding.EncodeToString(p)
	}
	dup := sign(t, PayloadType, approval, a1)
	dup.Signatures = append(dup.Signatures, dup.Signatures[0])
	dupECDSA := sign(t, PayloadType, approval, a2, a2) // two distinct ECDSA signatures by one key
	badSchema := func() []byte {
		rd, _ := testPatch(t, "x")
		st := Statement{Type: StatementType, Subject: []ResourceDescriptor{rd}, PredicateType: PredicateApproval, Predicate: []byte(`{"patch":{"cid":"nope","sha256":"00"}}`)}
		b, _ := marshalCompact(st)
		return b
	}()
	unknownPred := func() []byte {
		rd, _ := testPatch(t, "x")
		st := Statement{Type: StatementType, Subject: []ResourceDescriptor{rd}, PredicateType: PredicateTypePrefix + "rollback/v1", Predicate: []byte(`{}`)}
		b, _ := marshalCompact(st)
		return b
	}()
	oldType := []byte(strings.Replace(string(proposal), StatementType, "https://in-toto.io/Statement/v0.1", 1))
	noSig := sign(t, PayloadType, proposal, node)
	noSig.Signatures = nil

	for _, tc := range []struct {
		name    string
		env     *Envelope
		want    error
		notWant error
		msg     string // substring the message must contain
	}{
		{"proposal by node", sign(t, PayloadType, proposal, node), nil, nil, ""},
		{"approval 2 of 2", sign(t, PayloadType, approval, a1, a2), nil, nil, ""},
		{"approval 2 of 2 plus stranger", sign(t, PayloadType, approval, stranger, a1, a2), nil, nil, ""},
		{"tampered payload", tampered, ErrTamperedPayload, nil, node.KeyID()},
		{"untrusted key", sign(t, PayloadType, proposal, stranger), ErrUntrustedKey, nil, stranger.KeyID()},
		{"wrong payloadType", sign(t, "application/json", proposal, node), ErrWrongPayloadType, nil, "application/json"},
		{"same signature twice toward threshold", dup, ErrDuplicateSigner, nil, a1.KeyID()},
		{"same key twice toward threshold (ECDSA)", dupECDSA, ErrDuplicateSigner, nil, a2.KeyID()},
		{"below threshold", sign(t, PayloadType, approval, a1), ErrBelowThreshold, ErrDuplicateSigner, "threshold 2, 1 distinct"},
		{"predicate violates schema", sign(t, PayloadType, badSchema, a1, a2), ErrSchema, nil, "/patch/cid"},
		{"unknown predicate under prefix", sign(t, PayloadType, unknownPred, node), ErrUnknownPredicate, nil, "rollback/v1"},
		{"approval signed by node only", sign(t, PayloadType, approval, node), ErrUntrustedKey, nil, "approver"},
		{"proposal signed by approver only", sign(t, PayloadType, proposal, a1), ErrUntrustedKey, nil, "node keys"},
		{"no signature", noSig, ErrNoSignature, nil, ""},
		{"legacy statement type", sign(t, PayloadType, oldType, node), ErrBadStatement, nil, "v0.1"},
		{"payload not JSON", sign(t, PayloadType, []byte("hello"), node), ErrBadStatement, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := MarshalEnvelope(tc.env)
			if tc.env.Signatures == nil {
				b, err = []byte(`{"payloadType":"`+tc.env.PayloadType+`","payload":"`+tc.env.Payload+`","signatures":[]}`), nil
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := VerifyEnvelopeBytes(b, pol)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(res.Signers) < res.Threshold || res.Threshold < 1 {
					t.Fatalf("result %+v", res)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.notWant != nil && errors.Is(err, tc.notWant) {
				t.Fatalf("err = %v, must not match %v", err, tc.notWant)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not name %q", err, tc.msg)
			}
			// Every rejection is exactly one of the listed kinds.
			kinds := 0
			for _, k := range []error{ErrTamperedPayload, ErrUntrustedKey, ErrWrongPayloadType, ErrBelowThreshold, ErrSchema, ErrUnknownPredicate, ErrNoSignature, ErrBadStatement} {
				if errors.Is(err, k) {
					kinds++
				}
			}
			if kinds != 1 {
				t.Fatalf("error %q matches %d kinds, want 1", err, kinds)
			}
		})
	}
}

func TestMergeEnvelopes(t *testing.T) {
	a1, a2, a3 := testKey(t, ""), testKey(t, ""), testKey(t, AlgECDSAP256)
	pol := testPolicy(t, []*Signer{testKey(t, "")}, []*Signer{a1, a2, a3}, 3)
	approval := approvalStatement(t, "merge me")
	e1 := sign(t, PayloadType, approval, a1)
	e2 := sign(t, PayloadType, approval, a2)
	e3 := sign(t, PayloadType, approval, a3, a1)
	m, err := MergeEnvelopes(e1, e2, e3, e1)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Signatures) != 3 {
		t.Fatalf("%d signatures after merge, want 3", len(m.Signatures))
	}
	res, err := VerifyEnvelope(m, pol)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signers) != 3 {
		t.Fatalf("signers %v", res.Signers)
	}
	// Two of three do not meet the threshold.
	m2, _ := MergeEnvelopes(e1, e2)
	if _, err := VerifyEnvelope(m2, pol); !errors.Is(err, ErrBelowThreshold) {
		t.Fatalf("2 of 3: %v, want ErrBelowThreshold", err)
	}
	other := sign(t, PayloadType, approvalStatement(t, "another patch"), a2)
	if _, err := MergeEnvelopes(e1, other); !errors.Is(err, ErrPayloadMismatch) {
		t.Fatalf("merge of different payloads: %v, want ErrPayloadMismatch", err)
	}
	// AddSignatures is idempotent per key.
	again, err := AddSignatures(context.Background(), m, a1, a2)
	if err != nil || len(again.Signatures) != 3 {
		t.Fatalf("AddSignatures of existing signers: %v, %d signatures", err, len(again.Signatures))
	}
}

func TestParseEnvelopeStrict(t *testing.T) {
	good := `{"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k","sig":"c2ln"}]}`
	if _, err := ParseEnvelope([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"unknown field":  `{"payloadType":"t","payload":"aGk=","signatures":[],"x":1}`,
		"trailing data":  good + `{}`,
		"bad base64":     `{"payloadType":"t","payload":"!!","signatures":[]}`,
		"empty type":     `{"payloadType":"","payload":"aGk=","signatures":[]}`,
		"empty sig":      `{"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k","sig":""}]}`,
		"sig not base64": `{"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k","sig":"%%"}]}`,
		"not json":       `payload`,
		"too big":        `"` + strings.Repeat("a", MaxEnvelopeSize) + `"`,
	} {
		if _, err := ParseEnvelope([]byte(in)); !errors.Is(err, ErrMalformedEnvelope) {
			t.Errorf("%s: err = %v, want ErrMalformedEnvelope", name, err)
		}
	}
}

func TestNewStatementRejects(t *testing.T) {
	rd, ref := testPatch(t, "p")
	for _, tc := range []struct {
		name     string
		typ      string
		subjects []ResourceDescriptor
		pred     any
		want     error
	}{
		{"schema", PredicateApproval, []ResourceDescriptor{rd}, ApprovalPredicate{Patch: PatchRef{CID: ref.CID}}, ErrSchema},
		{"unknown", PredicateTypePrefix + "nope/v1", []ResourceDescriptor{rd}, map[string]any{}, ErrUnknownPredicate},
		{"no subject", PredicateApproval, nil, ApprovalPredicate{Patch: ref}, ErrBadStatement},
		{"subject without cid", PredicateApproval, []ResourceDescriptor{{Name: "x", Digest: rd.Digest}}, ApprovalPredicate{Patch: ref}, ErrBadStatement},
		{"subject bad digest", PredicateApproval, []ResourceDescriptor{{URI: rd.URI, Digest: map[string]string{"sha256": "zz"}}}, ApprovalPredicate{Patch: ref}, ErrBadStatement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := NewStatement(tc.typ, tc.subjects, tc.pred); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Deterministic: two builds give the same bytes.
	_, b1, _ := NewStatement(PredicateApproval, []ResourceDescriptor{rd}, ApprovalPredicate{Patch: ref})
	_, b2, _ := NewStatement(PredicateApproval, []ResourceDescriptor{rd}, ApprovalPredicate{Patch: ref})
	if string(b1) != string(b2) {
		t.Fatalf("statement encoding not deterministic:\n%s\n%s", b1, b2)
	}
}
