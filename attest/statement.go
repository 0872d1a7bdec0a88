package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/types/known/structpb"

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
	if err := st.validate(); err != nil {
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
func ParseStatement(payload []byte) (*Statement, error) {
	if len(payload) > MaxStatementSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadStatement, len(payload), MaxStatementSize)
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	if err := st.validate(); err != nil {
		return nil, err
	}
	return &st, nil
}

// validate applies the in-toto library's Statement.Validate to st.
func (st *Statement) validate() error {
	if st.Type != StatementType {
		return fmt.Errorf("%w: _type %q, want %q", ErrBadStatement, st.Type, StatementType)
	}
	s := &ita.Statement{Type: st.Type, PredicateType: st.PredicateType}
	for _, rd := range st.Subject {
		s.Subject = append(s.Subject, &ita.ResourceDescriptor{Name: rd.Name, Uri: rd.URI, Digest: rd.Digest})
	}
	// The predicate must be a JSON object; its contents are checked by the
	// schema, so an empty Struct stands in for it here.
	if p := bytes.TrimLeft(st.Predicate, " \t\r\n"); len(p) > 0 && p[0] == '{' {
		s.Predicate = &structpb.Struct{}
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadStatement, err)
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

// DecodePredicate unmarshals the predicate into v (e.g. *ApprovalPredicate).
func (st *Statement) DecodePredicate(v any) error {
	if err := json.Unmarshal(st.Predicate, v); err != nil {
		return fmt.Errorf("decode %s predicate: %w", st.PredicateType, err)
	}
	return nil
}
