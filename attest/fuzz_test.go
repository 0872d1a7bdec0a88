package attest

import (
	"bytes"
	"errors"
	"testing"
)

// Seeds shared by f.Add and testdata/fuzz (see TestWriteFuzzCorpus).
var (
	seedEnvelope  = []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}]}`)
	seedStatement = []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"uri":"ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","digest":{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}],"predicateType":"https://agentix.dev/attestation/approval/v1","predicate":{"patch":{"cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}`)
	seedBundle    = []byte(`{"mediaType":"application/vnd.agentix.bundle.v1+json","id":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","envelope":"e30=","logIndex":0,"inclusionProof":[],"checkpoint":"o\n1\nAAAA\n\n— o sig\n"}`)
)

func FuzzParseEnvelope(f *testing.F) {
	f.Add(seedEnvelope)
	f.Add([]byte(`{"payloadType":"t","payload":"aGk=","signatures":[]}`))
	f.Add([]byte(`{}`))
	// Repeated and case-variant member names (all refused).
	f.Add([]byte(`{"payloadType":"t","payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{"PayloadType":"t","payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{"payloadType":"t","payload":"aGk=","payload":"e30=","signatures":[{"keyid":"k","KeyID":"j","sig":"c2ln"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedEnvelope) {
				t.Fatalf("error does not match ErrMalformedEnvelope: %v", err)
			}
			return
		}
		// A parsed envelope re-encodes, and the encoding parses to the
		// same envelope (the canonical form is a fixed point).
		b, err := MarshalEnvelope(env)
		if err != nil {
			t.Fatalf("parsed envelope does not marshal: %v", err)
		}
		env2, err := ParseEnvelope(b)
		if err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v", err)
		}
		b2, _ := MarshalEnvelope(env2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable:\n%s\n%s", b, b2)
		}
		// Verification never panics, whatever the envelope.
		_, _, _ = VerifySignatures(env, NewKeySet(), 1)
	})
}

func FuzzParseStatement(f *testing.F) {
	f.Add(seedStatement)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x","predicate":{}}`))
	f.Add([]byte(`null`))
	for _, s := range statementSeeds(f) { // repeated and case-variant names
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatement(data)
		if err != nil {
			if !errors.Is(err, ErrBadStatement) {
				t.Fatalf("error does not match ErrBadStatement: %v", err)
			}
			return
		}
		if st.Type != StatementType || len(st.Subject) == 0 || st.PredicateType == "" {
			t.Fatalf("accepted statement breaks the rules: %+v", st)
		}
		// Schema checking an accepted statement never panics.
		_ = ValidatePredicate(st.PredicateType, st.Predicate)
		_ = st.checkSubjects()
	})
}

func FuzzParseBundle(f *testing.F) {
	f.Add(seedBundle)
	f.Add([]byte(`{"mediaType":"application/vnd.agentix.bundle.v1+json"}`))
	f.Add([]byte(`[]`))
	// Repeated and case-variant member names (all refused).
	f.Add(bytes.Replace(seedBundle, []byte(`{`), []byte(`{"logIndex":1,`), 1))
	f.Add(bytes.Replace(seedBundle, []byte(`{`), []byte(`{"LogIndex":1,`), 1))
	f.Add(bytes.Replace(seedBundle, []byte(`{`), []byte(`{"envelope":"e30=",`), 1))
	pol := &Policy{Version: PolicyVersion}
	if err := pol.compile(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bu, err := ParseBundle(data)
		if err != nil {
			if !errors.Is(err, ErrBadBundle) {
				t.Fatalf("error does not match ErrBadBundle: %v", err)
			}
			return
		}
		if bu.MediaType != BundleMediaType || len(bu.Envelope) == 0 {
			t.Fatalf("accepted bundle breaks the rules: %+v", bu)
		}
		// An empty policy trusts nothing: nothing may verify.
		if _, err := VerifyBundle(data, pol); err == nil {
			t.Fatal("bundle verified against an empty policy")
		}
	})
}
