package attest

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestStatementAgreesWithLibraries checks verification against the
// libraries it stands in for: parseStatement against protojson + the
// in-toto library's Statement.Validate, and the signature check against
// go-securesystemslib's dsse.EnvelopeVerifier.
func TestStatementAgreesWithLibraries(t *testing.T) {
	good := string(proposalStatement(t, "agree"))
	cases := []struct {
		name    string
		payload string
		ok      bool
	}{
		{"valid", good, true},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x","predicate":{}}`, false},
		{"bad digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"zz"}}],"predicateType":"x","predicate":{}}`, false},
		{"short digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"abcd"}}],"predicateType":"x","predicate":{}}`, false},
		{"no digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"n"}],"predicateType":"x","predicate":{}}`, false},
		{"no predicate", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"x":"y"}}],"predicateType":"x"}`, false},
		{"no predicateType", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"x":"y"}}],"predicate":{}}`, false},
		{"minimal", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"x":"y"}}],"predicateType":"x","predicate":{"a":1}}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseStatement([]byte(c.payload))
			var its ita.Statement
			lerr := protojson.Unmarshal([]byte(c.payload), &its)
			if lerr == nil {
				lerr = its.Validate()
			}
			if (err == nil) != c.ok || (lerr == nil) != c.ok {
				t.Fatalf("parseStatement: %v; in-toto library: %v; want ok=%v", err, lerr, c.ok)
			}
			if err != nil && !errors.Is(err, ErrBadStatement) {
				t.Fatalf("error %v does not match ErrBadStatement", err)
			}
		})
	}

	s1, s2, other := testKey(t, AlgEd25519), testKey(t, AlgECDSAP256), testKey(t, AlgEd25519)
	payload := []byte(good)
	ks := NewKeySet(s1.Verifier(), s2.Verifier())
	anon := sign(t, PayloadType, payload, s1)
	anon.Signatures[0].KeyID = ""
	forged := sign(t, PayloadType, payload, s1)
	forged.Signatures[0].Sig = sign(t, PayloadType, []byte("other"), s1).Signatures[0].Sig
	for name, env := range map[string]*Envelope{
		"one":       sign(t, PayloadType, payload, s1),
		"two":       sign(t, PayloadType, payload, s1, s2),
		"no keyid":  anon,
		"untrusted": sign(t, PayloadType, payload, other),
		"forged":    forged,
	} {
		for _, th := range []int{1, 2} {
			got, _, err := VerifySignatures(env, ks, th)
			ev, _ := dsse.NewMultiEnvelopeVerifier(th, s1.Verifier().DSSEVerifier(), s2.Verifier().DSSEVerifier())
			acc, _, lerr := ev.VerifyAndDecode(context.Background(), env)
			if (err == nil) != (lerr == nil) || len(got) != len(acc) {
				t.Errorf("%s threshold %d: ours %v %v, dsse %d accepted %v", name, th, got, err, len(acc), lerr)
			}
		}
	}
}

// statementSeeds are statements for FuzzStatementAgreesWithInToto,
// including repeated and case-variant member names at every level; ok is
// whether ParseStatement accepts the seed.
func statementSeeds(t testing.TB) []statementSeed {
	good := proposalStatement(t, "seed")
	seeds := []statementSeed{{good, true}, {seedStatement, true}, {[]byte(`null`), false}, {[]byte(`{}`), false}, {[]byte(`[]`), false}}
	zeros := strings.Repeat("0", 64)
	for _, c := range []struct {
		anchor, ins string
		ok          bool
	}{
		{`{`, `"predicateType":"` + PredicateApproval + `",`, false},
		{`{`, `"PredicateType":"` + PredicateApproval + `",`, false},
		{`{`, `"predicate_type":"x",`, false},
		{`{`, `"_type":"x",`, false},
		{`{`, `"type":"x",`, false},
		{`{`, `"_Type":"x",`, false},
		{`{`, `"subject":[],`, false},
		{`{`, `"extension":{},`, false},
		{`"subject":[{`, `"Name":"n",`, false},
		{`"subject":[{`, `"name":"n",`, false},
		{`"subject":[{`, `"mediaType":"m","annotations":{"a":1,"b":[null,true,"\u00e9"]},`, true},
		{`"subject":[{`, `"annotations":{"a":1,"a":2},`, false},
		{`"subject":[{`, `"media_type":"m",`, false},
		{`"subject":[{`, `"downloadLocation":"d",`, false},
		{`"digest":{`, `"sha256":"` + zeros + `",`, false},
		{`"digest":{`, `"SHA256":"` + zeros + `",`, true}, // another algorithm name
		{`"predicate":{`, `"workspace":"x",`, false},
		{`"predicate":{`, `"Workspace":"x",`, true}, // the schema refuses it, later
		{`"predicate":{`, `"n":1e400,`, false},
		{`"predicate":{`, `"n":-0.5e-3,"s":"\ud800",`, false},
		{`"predicate":{`, "\"s\":\"\xff\",", false},
		{`"predicate":{`, `"s":"\ud83d\ude00",`, true},
	} {
		seeds = append(seeds, statementSeed{insertAfter(t, good, c.anchor, c.ins), c.ok})
	}
	return seeds
}

type statementSeed struct {
	in []byte
	ok bool
}

// FuzzStatementAgreesWithInToto: ParseStatement and the in-toto library
// (protojson + Statement.Validate) never read one payload two ways. What
// ParseStatement accepts, the library accepts with the same _type, subjects,
// predicate type and predicate; what the library accepts and ParseStatement
// refuses, it refuses only for a member name it does not know (protojson
// also takes the proto field names, such as "predicate_type", and fields
// agentix subjects never use).
func FuzzStatementAgreesWithInToto(f *testing.F) {
	for _, s := range statementSeeds(f) {
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, pred, err := parseStatement(b)
		var its ita.Statement
		lerr := protojson.Unmarshal(b, &its)
		if lerr == nil {
			lerr = its.Validate()
		}
		if err != nil {
			if !errors.Is(err, ErrBadStatement) {
				t.Fatalf("error %v does not match ErrBadStatement", err)
			}
			if lerr == nil && !strings.Contains(err.Error(), "unknown object member name") {
				t.Fatalf("refused what the in-toto library accepts: %v\n%s", err, b)
			}
			return
		}
		if lerr != nil {
			t.Fatalf("accepted what the in-toto library refuses (%v):\n%s", lerr, b)
		}
		if its.Type != st.Type || its.PredicateType != st.PredicateType || len(its.Subject) != len(st.Subject) {
			t.Fatalf("read differently: library %v, ours %+v", &its, st)
		}
		for i, rd := range st.Subject {
			lrd := its.Subject[i]
			var ann map[string]any
			if lrd.Annotations != nil {
				ann = lrd.Annotations.AsMap()
			}
			if lrd.Name != rd.Name || lrd.Uri != rd.URI || lrd.MediaType != rd.MediaType ||
				!maps.Equal(lrd.Digest, rd.Digest) && len(lrd.Digest)+len(rd.Digest) > 0 ||
				!reflect.DeepEqual(ann, rd.Annotations) && len(ann)+len(rd.Annotations) > 0 {
				t.Fatalf("subject %d read differently: library %v, ours %+v", i, lrd, rd)
			}
		}
		if lp := its.Predicate.AsMap(); !reflect.DeepEqual(lp, pred) {
			t.Fatalf("predicate read differently: library %#v, ours %#v", lp, pred)
		}
	})
}

// TestStatementSeeds: each seed gets the expected verdict (the fuzz target
// above checks the library agrees).
func TestStatementSeeds(t *testing.T) {
	for i, s := range statementSeeds(t) {
		if _, err := ParseStatement(s.in); (err == nil) != s.ok {
			t.Errorf("seed %d: err = %v, want ok=%v: %.200s", i, err, s.ok, s.in)
		}
	}
}
