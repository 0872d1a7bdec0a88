package attest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

var jsonSeeds = []string{
	`{}`, `[]`, `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, ` {"a" : -0.5e+3 } `,
	`{"a":"\u00e9\ud83d\ude00\n"}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1}x`, `{"a":01}`,
	`{"a":1.}`, `{"a":-}`, `{"a":1e400}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{"a":1,}`, `[1,]`,
	`{"a":1,"a":2}`, `"s"`, `nul`, `{"a"1}`, `{"a":[1 2]}`, ``, `   `, `{"_type":"x","predicate":{"k":[1,2]}}`,
}

// FuzzDecodeJSON checks the hot-path decoder against encoding/json: both
// accept the same texts and produce the same values.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeJSON(b)
		var want any
		werr := json.Unmarshal(b, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeJSON(%q) err=%v, encoding/json err=%v", b, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeJSON(%q) = %#v, encoding/json = %#v", b, got, want)
		}
	})
}

func TestDecodeJSONSeeds(t *testing.T) {
	for _, s := range jsonSeeds {
		got, err := decodeJSON([]byte(s))
		var want any
		werr := json.Unmarshal([]byte(s), &want)
		if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, %v; encoding/json %#v, %v", s, got, err, want, werr)
		}
	}
}

// TestFastPathAgreesWithLibraries checks the verification hot path against
// the libraries it stands in for: parseStatement against protojson + the
// in-toto library's Statement.Validate, and the signature check against
// go-securesystemslib's dsse.EnvelopeVerifier.
func TestFastPathAgreesWithLibraries(t *testing.T) {
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
