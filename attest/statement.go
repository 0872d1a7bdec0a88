package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	ita "github.com/in-toto/attestation/go/v1"
	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/schemas"
)

// StatementType is the in-toto Statement v1 _type.
const StatementType = ita.StatementTypeUri

// MaxStatementSize bounds a statement accepted by ParseStatement (8 MiB).
const MaxStatementSize = 8 << 20

// ResourceDescriptor is an in-toto v1 ResourceDescriptor as JSON. Agentix
// subjects set URI to "ipfs://<cid>" and Digest["sha256"] to the hex SHA-256
// of the content the CID names (file bytes for UnixFS files, block bytes for
// records); Name may hold a Nix store path or a file name.
type ResourceDescriptor struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	MediaType   string            `json:"mediaType,omitempty"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// Subject returns the agentix subject for CID c whose content has SHA-256
// sum sha256sum, with an optional name.
func Subject(c cid.Cid, sha256sum []byte, name string) ResourceDescriptor {
	return ResourceDescriptor{
		Name:   name,
		URI:    "ipfs://" + c.String(),
		Digest: map[string]string{"sha256": hex.EncodeToString(sha256sum)},
	}
}

// CID returns the CID named by an "ipfs://<cid>" URI.
func (rd ResourceDescriptor) CID() (cid.Cid, bool) {
	s, ok := strings.CutPrefix(rd.URI, "ipfs://")
	if !ok {
		return cid.Undef, false
	}
	c, err := cid.Decode(s)
	return c, err == nil
}

// SHA256 returns the hex sha256 digest, or "".
func (rd ResourceDescriptor) SHA256() string { return rd.Digest["sha256"] }

// Statement is an in-toto Statement v1. Predicate holds the predicate's JSON
// exactly as it appeared in the payload.
type Statement struct {
	Type          string               `json:"_type"`
	Subject       []ResourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     json.RawMessage      `json:"predicate"`
}

// NewStatement builds the statement for predicate (a Go value, or JSON as
// []byte / json.RawMessage), checks it against the predicate type's schema
// and the subjects against the agentix subject rules, and returns it with its
// encoding: the payload to sign. The encoding is deterministic, so approvers
// who build the same approval sign the same bytes.
func NewStatement(predicateType string, subjects []ResourceDescriptor, predicate any) (*Statement, []byte, error) {
	var pj []byte
	switch p := predicate.(type) {
	case json.RawMessage:
		pj = p
	case []byte:
		pj = p
	default:
		var err error
		if pj, err = marshalCompact(predicate); err != nil {
			return nil, nil, fmt.Errorf("encode predicate: %w", err)
		}
	}
	if err := schemas.ValidatePredicate(predicateType, pj); err != nil {
		return nil, nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, pj); err != nil {
		return nil, nil, fmt.Errorf("%w: predicate: %v", ErrSchema, err)
	}
	st := &Statement{Type: StatementType, Subject: subjects, PredicateType: predicateType, Predicate: compact.Bytes()}
	var pred any
	if err := decodeStrict(st.Predicate, &pred, false); err != nil {
		return nil, nil, fmt.Errorf("%w: predicate: %v", ErrSchema, err)
	}
	if err := st.validate(pred); err != nil {
		return nil, nil, err
	}
	if err := st.checkSubjects(); err != nil {
		return nil, nil, err
	}
	b, err := marshalCompact(st)
	if err != nil {
		return nil, nil, err
	}
	return st, b, nil
}

func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseStatement decodes an in-toto Statement v1 and validates it with the
// in-toto library's rules (type, non-empty subjects each with a well-formed
// digest, predicate type, predicate object). Failures match ErrBadStatement
// (and the in-toto library's own error where it has one). It does not check
// the predicate against a schema (see VerifyEnvelope, ValidatePredicate).
//
// The reading is strict, so that it can never differ from the in-toto
// library's (protojson): member names are matched exactly, a repeated
// member name anywhere (statement, subject, digest, predicate) and a member
// the statement or a subject does not define (e.g. "PredicateType", or an
// extension field) fail, as does invalid UTF-8; the error names the member.
// Every statement it accepts, protojson accepts with the same meaning.
func ParseStatement(payload []byte) (*Statement, error) {
	st, _, err := parseStatement(payload)
	return st, err
}

// parseStatement is ParseStatement that also returns the predicate decoded
// into an `any` (objects as map[string]any, numbers as float64), ready for
// schemas.ValidatePredicateValue. Both are read by the one strict decoder
// (decodeStrict); Statement.Predicate keeps the predicate's exact text.
func parseStatement(payload []byte) (*Statement, any, error) {
	if len(payload) > MaxStatementSize {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadStatement, len(payload), MaxStatementSize)
	}
	st := &Statement{}
	if err := decodeStrict(payload, st, true); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	var pred any
	if len(st.Predicate) > 0 {
		if err := decodeStrict(st.Predicate, &pred, false); err != nil {
			return nil, nil, fmt.Errorf("%w: predicate: %v", ErrBadStatement, err)
		}
	}
	if err := st.validate(pred); err != nil {
		return nil, nil, err
	}
	return st, pred, nil
}

// decodeStrict is the one decoder of JSON from outside in this package
// (statements, predicates, envelopes, bundles, trust policies): encoding/json
// v2 semantics through github.com/go-json-experiment/json, so member names
// match exactly, repeated member names and invalid UTF-8 fail, and nothing
// may follow the value. With rejectUnknown, a member no struct field names
// fails too. Errors name the member (and its JSON pointer).
func decodeStrict(b []byte, v any, rejectUnknown bool) error {
	return jsonv2.Unmarshal(b, v, jsonv2.RejectUnknownMembers(rejectUnknown))
}

// knownPredicates is the set of predicate types with a schema.
var knownPredicates = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, t := range schemas.PredicateTypes() {
		m[t] = true
	}
	return m
})

func knownPredicate(t string) bool { return knownPredicates()[t] }

// validate enforces the rules of the in-toto library's Statement.Validate
// without building its protobuf Statement (tests check that both agree):
// the _type, at least one subject, each subject valid by the library's
// ResourceDescriptor.Validate and with a digest, a predicate type, and a
// predicate that is a JSON object (pred is the decoded predicate, nil when
// absent).
func (st *Statement) validate(pred any) error {
	if st.Type != StatementType {
		return fmt.Errorf("%w: _type %q, want %q", ErrBadStatement, st.Type, StatementType)
	}
	if len(st.Subject) == 0 {
		return fmt.Errorf("%w: %w", ErrBadStatement, ita.ErrSubjectRequired)
	}
	for i, rd := range st.Subject {
		// The in-toto library's own descriptor rules (name, uri or
		// digest; digest encoding and length per algorithm).
		itrd := ita.ResourceDescriptor{Name: rd.Name, Uri: rd.URI, Digest: rd.Digest}
		if err := itrd.Validate(); err != nil {
			return fmt.Errorf("%w: subject %d: %w", ErrBadStatement, i, err)
		}
		if len(rd.Digest) == 0 {
			return fmt.Errorf("%w: subject %d: %w", ErrBadStatement, i, ita.ErrDigestRequired)
		}
	}
	if st.PredicateType == "" {
		return fmt.Errorf("%w: %w", ErrBadStatement, ita.ErrPredicateTypeRequired)
	}
	if _, ok := pred.(map[string]any); !ok {
		return fmt.Errorf("%w: %w", ErrBadStatement, ita.ErrPredicateRequired)
	}
	return nil
}

// checkSubjects enforces the agentix subject rules: every subject has an
// "ipfs://<cid>" URI with a valid CID and a sha256 digest.
func (st *Statement) checkSubjects() error {
	for i, rd := range st.Subject {
		if _, ok := rd.CID(); !ok {
			return fmt.Errorf("%w: subject %d: uri %q is not ipfs://<cid>", ErrBadStatement, i, rd.URI)
		}
		if len(rd.SHA256()) != 64 {
			return fmt.Errorf("%w: subject %d: no sha256 digest", ErrBadStatement, i)
		}
	}
	return nil
}

// DecodePredicate unmarshals the predicate into v (e.g. *ApprovalPredicate)
// with the strict decoder: member names match exactly and a repeated member
// fails (members v does not have are ignored; the schema, checked at
// verification, allows none).
func (st *Statement) DecodePredicate(v any) error {
	if err := decodeStrict(st.Predicate, v, false); err != nil {
		return fmt.Errorf("decode %s predicate: %w", st.PredicateType, err)
	}
	return nil
}
