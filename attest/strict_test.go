package attest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	ita "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// insertAfter returns b with ins inserted right after the first occurrence
// of anchor (which must occur).
func insertAfter(t testing.TB, b []byte, anchor, ins string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(anchor))
	if i < 0 {
		t.Fatalf("anchor %q not in %s", anchor, b)
	}
	i += len(anchor)
	out := append([]byte(nil), b[:i]...)
	out = append(out, ins...)
	return append(out, b[i:]...)
}

// rejectCase is one input that every reader of it must refuse: key is the
// member name the error has to name.
type rejectCase struct {
	name string
	in   []byte
	key  string
}

func checkRejected(t *testing.T, c rejectCase, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted %.120s…", c.in)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", c.key)) {
		t.Fatalf("error %q does not name the member %q", err, c.key)
	}
}

// TestStrictStatement: a statement with a repeated or case-variant member
// name is refused by the verifier, as the in-toto library (protojson)
// refuses it, and the error names the member. Before, the verifier's own
// decoder let the last of repeated members win and ignored "PredicateType".
func TestStrictStatement(t *testing.T) {
	node := testKey(t, "")
	pol := testPolicy(t, []*Signer{node}, nil, 0)
	good := proposalStatement(t, "strict")
	if _, err := VerifyEnvelope(sign(t, PayloadType, good, node), pol); err != nil {
		t.Fatal(err)
	}
	cases := []rejectCase{
		{"duplicate predicateType", insertAfter(t, good, `{`, `"predicateType":"`+PredicateApproval+`",`), "predicateType"},
		{"duplicate predicateType, last other", insertAfter(t, good, `"predicate":{`, `}, "predicateType":"`+PredicateApproval+`", "x":{`), "predicateType"},
		{"duplicate _type", insertAfter(t, good, `{`, `"_type":"https://in-toto.io/Statement/v0.1",`), "_type"},
		{"case-variant PredicateType", insertAfter(t, good, `{`, `"PredicateType":"`+PredicateApproval+`",`), "PredicateType"},
		{"case-variant _Type", insertAfter(t, good, `{`, `"_TYPE":"x",`), "_TYPE"},
		{"duplicate subject", insertAfter(t, good, `{`, `"subject":[],`), "subject"},
		{"case-variant Subject", insertAfter(t, good, `{`, `"Subject":[],`), "Subject"},
		{"duplicate predicate", insertAfter(t, good, `{`, `"predicate":{},`), "predicate"},
		{"duplicate member in predicate", insertAfter(t, good, `"predicate":{`, `"workspace":"/elsewhere",`), "workspace"},
		{"duplicate digest algorithm", insertAfter(t, good, `"digest":{`, `"sha256":"`+strings.Repeat("0", 64)+`",`), "sha256"},
		{"duplicate subject uri", insertAfter(t, good, `"subject":[{`, `"uri":"ipfs://bafkqaaa",`), "uri"},
		{"case-variant subject Digest", insertAfter(t, good, `"subject":[{`, `"Digest":{},`), "Digest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var its ita.Statement
			if protojson.Unmarshal(c.in, &its) == nil {
				t.Fatalf("the in-toto library accepts %s", c.in)
			}
			_, err := ParseStatement(c.in)
			checkRejected(t, c, err, ErrBadStatement)
			_, err = VerifyEnvelope(sign(t, PayloadType, c.in, node), pol)
			checkRejected(t, c, err, ErrBadStatement)
		})
	}
}

// TestStrictEnvelope: repeated or case-variant DSSE envelope members are
// refused, naming the member.
func TestStrictEnvelope(t *testing.T) {
	node := testKey(t, "")
	pol := testPolicy(t, []*Signer{node}, nil, 0)
	good, err := MarshalEnvelope(sign(t, PayloadType, proposalStatement(t, "env"), node))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyEnvelopeBytes(good, pol); err != nil {
		t.Fatal(err)
	}
	other := sign(t, "text/plain", []byte("other"), node)
	cases := []rejectCase{
		{"duplicate payloadType", insertAfter(t, good, `{`, `"payloadType":"text/plain",`), "payloadType"},
		{"duplicate payload", insertAfter(t, good, `{`, `"payload":"`+other.Payload+`",`), "payload"},
		{"case-variant PayloadType", insertAfter(t, good, `{`, `"PayloadType":"text/plain",`), "PayloadType"},
		{"case-variant Payload", insertAfter(t, good, `{`, `"Payload":"`+other.Payload+`",`), "Payload"},
		{"duplicate signatures", insertAfter(t, good, `{`, `"signatures":[],`), "signatures"},
		{"duplicate sig", insertAfter(t, good, `"signatures":[{`, `"sig":"`+other.Signatures[0].Sig+`",`), "sig"},
		{"duplicate keyid", insertAfter(t, good, `"signatures":[{`, `"keyid":"k",`), "keyid"},
		{"case-variant KeyID", insertAfter(t, good, `"signatures":[{`, `"KeyID":"k",`), "KeyID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseEnvelope(c.in)
			checkRejected(t, c, err, ErrMalformedEnvelope)
			_, err = VerifyEnvelopeBytes(c.in, pol)
			checkRejected(t, c, err, ErrMalformedEnvelope)
		})
	}
}

// TestStrictPolicy: a trust policy with a repeated or case-variant member
// (two "threshold"s: which one counts?) is refused, naming the member.
func TestStrictPolicy(t *testing.T) {
	good, err := os.ReadFile("testdata/trust-policy.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePolicy(good); err != nil {
		t.Fatal(err)
	}
	cases := []rejectCase{
		{"duplicate threshold", insertAfter(t, good, `"approvers": {`, `"threshold": 1,`), "threshold"},
		{"case-variant Threshold", insertAfter(t, good, `"approvers": {`, `"Threshold": 1,`), "Threshold"},
		{"duplicate quorum", insertAfter(t, good, `"witnesses": {`, `"quorum": 0,`), "quorum"},
		{"duplicate version", insertAfter(t, good, `{`, `"version": 1,`), "version"},
		{"case-variant Version", insertAfter(t, good, `{`, `"Version": 1,`), "Version"},
		{"duplicate approvers", insertAfter(t, good, `{`, `"approvers": {"threshold": 0, "keys": []},`), "approvers"},
		{"duplicate origin", insertAfter(t, good, `"logs": [`+"\n    {", `"origin": "other",`), "origin"},
		{"duplicate publicKey", insertAfter(t, good, `"nodeKeys": [`+"\n    {", `"publicKey": "x",`), "publicKey"},
		{"duplicate member in boundary", insertAfter(t, good, `"boundary": {`, `"a": 1, "a": 2`), "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePolicy(c.in)
			checkRejected(t, c, err, ErrBadPolicy)
		})
	}
}

// TestStrictBundle: a bundle with a repeated or case-variant member is
// refused, naming the member, even when the last of the repeats is right.
func TestStrictBundle(t *testing.T) {
	f := newBundleFixture(t, false)
	cosigned := string(cosign(t, cosign(t, []byte(f.bundle.Checkpoint), f.w1), f.w2))
	good := f.encode(t, func(b *Bundle) { b.Checkpoint = cosigned })
	if _, err := VerifyBundle(good, f.policy); err != nil {
		t.Fatal(err)
	}
	cases := []rejectCase{
		{"duplicate logIndex", insertAfter(t, good, `{`, `"logIndex": 4,`), "logIndex"},
		{"case-variant LogIndex", insertAfter(t, good, `{`, `"LogIndex": 4,`), "LogIndex"},
		{"duplicate envelope", insertAfter(t, good, `{`, `"envelope": "e30=",`), "envelope"},
		{"duplicate checkpoint", insertAfter(t, good, `{`, `"checkpoint": "x",`), "checkpoint"},
		{"duplicate mediaType", insertAfter(t, good, `{`, `"mediaType": "x",`), "mediaType"},
		{"case-variant ID", insertAfter(t, good, `{`, `"ID": "x",`), "ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseBundle(c.in)
			checkRejected(t, c, err, ErrBadBundle)
			_, err = VerifyBundle(c.in, f.policy)
			checkRejected(t, c, err, ErrBadBundle)
		})
	}
}

// TestDecodePredicateStrict: decoding a predicate into its Go type reads
// member names exactly and refuses repeats (encoding/json matched
// "Workspace" to the workspace field and let the last repeat win).
func TestDecodePredicateStrict(t *testing.T) {
	for _, c := range []struct {
		name, pred, want string
		key              string // the member an error must name; "" when accepted
	}{
		{"plain", `{"workspace":"/w"}`, "/w", ""},
		{"case variant ignored", `{"workspace":"/w","Workspace":"/evil"}`, "/w", ""},
		{"duplicate", `{"workspace":"/evil","workspace":"/w"}`, "", "workspace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &Statement{PredicateType: PredicateProposal, Predicate: []byte(c.pred)}
			var p ProposalPredicate
			err := st.DecodePredicate(&p)
			if c.key != "" {
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.key)) {
					t.Fatalf("err = %v, want an error naming %q", err, c.key)
				}
				return
			}
			if err != nil || p.Workspace != c.want {
				t.Fatalf("workspace %q, err %v; want %q", p.Workspace, err, c.want)
			}
		})
	}
}
