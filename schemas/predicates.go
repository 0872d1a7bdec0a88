package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// PredicateTypePrefix is the stable prefix of every agentix predicate type
// URI. A predicate type is PredicateTypePrefix + "<name>/v<major>"; the JSON
// Schema of each is embedded in this package under predicates/ with the type
// URI as its $id.
const PredicateTypePrefix = "https://agentix.dev/attestation/"

// Predicate type URIs.
const (
	PredicateAuditLog      = PredicateTypePrefix + "audit-log/v1"
	PredicateProposal      = PredicateTypePrefix + "proposal/v1"
	PredicateApproval      = PredicateTypePrefix + "approval/v1"
	PredicateApply         = PredicateTypePrefix + "apply/v1"
	PredicateRunningConfig = PredicateTypePrefix + "running-config/v1"
	// PredicateRunningConfigV2 adds the configuration chain: the source
	// state, what it extends, the applies since then and the evaluated
	// toplevel.
	PredicateRunningConfigV2 = PredicateTypePrefix + "running-config/v2"
)

// ErrUnknownPredicate is returned for a predicate type that has no schema
// here: unknown names under PredicateTypePrefix and any foreign type.
var ErrUnknownPredicate = errors.New("unknown predicate type")

// ErrSchema is returned (wrapped in a *SchemaError) when a value violates its
// JSON Schema.
var ErrSchema = errors.New("predicate violates its JSON Schema")

// SchemaError names the predicate type and what in the value was wrong.
type SchemaError struct {
	PredicateType string
	Detail        string // the validator's report: instance location and rule
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrSchema, e.PredicateType, e.Detail)
}

func (e *SchemaError) Unwrap() error { return ErrSchema }

//go:embed predicates/*.schema.json
var predicateFS embed.FS

// predicateFiles maps each predicate type to its schema file.
var predicateFiles = map[string]string{
	PredicateAuditLog:        "predicates/audit-log.v1.schema.json",
	PredicateProposal:        "predicates/proposal.v1.schema.json",
	PredicateApproval:        "predicates/approval.v1.schema.json",
	PredicateApply:           "predicates/apply.v1.schema.json",
	PredicateRunningConfig:   "predicates/running-config.v1.schema.json",
	PredicateRunningConfigV2: "predicates/running-config.v2.schema.json",
}

const defsFile = "predicates/defs.schema.json"

var compiled = sync.OnceValues(compilePredicates)

func compilePredicates() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	// Only embedded documents resolve; nothing is ever fetched.
	c.UseLoader(noLoader{})
	add := func(file string) (string, error) {
		b, err := predicateFS.ReadFile(file)
		if err != nil {
			return "", err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		m, _ := doc.(map[string]any)
		id, _ := m["$id"].(string)
		if id == "" {
			return "", fmt.Errorf("%s: no $id", file)
		}
		return id, c.AddResource(id, doc)
	}
	if _, err := add(defsFile); err != nil {
		return nil, err
	}
	out := make(map[string]*jsonschema.Schema, len(predicateFiles))
	for typ, file := range predicateFiles {
		id, err := add(file)
		if err != nil {
			return nil, err
		}
		if id != typ {
			return nil, fmt.Errorf("%s: $id %q, want %q", file, id, typ)
		}
	}
	for typ := range predicateFiles {
		s, err := c.Compile(typ)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", typ, err)
		}
		out[typ] = s
	}
	return out, nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not embedded", url)
}

// PredicateTypes lists the known predicate types, sorted.
func PredicateTypes() []string {
	var ts []string
	for t := range predicateFiles {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// PredicateSchema returns the JSON Schema document of a predicate type.
func PredicateSchema(predicateType string) ([]byte, error) {
	file, ok := predicateFiles[predicateType]
	if !ok {
		return nil, unknown(predicateType)
	}
	return predicateFS.ReadFile(file)
}

func unknown(t string) error {
	if strings.HasPrefix(t, PredicateTypePrefix) {
		return fmt.Errorf("%w %q (under %s; known: %s)", ErrUnknownPredicate, t, PredicateTypePrefix, strings.Join(PredicateTypes(), ", "))
	}
	return fmt.Errorf("%w %q (not an agentix predicate type, want prefix %s)", ErrUnknownPredicate, t, PredicateTypePrefix)
}

// ValidatePredicate checks the JSON text of a predicate against its type's
// schema. It fails with ErrUnknownPredicate for an unknown type and with a
// *SchemaError (matching ErrSchema) for invalid JSON or a violation. The
// text is read strictly, as package attest reads statements (encoding/json
// v2 semantics through github.com/go-json-experiment/json): a repeated
// member name, invalid UTF-8 or trailing data is not JSON here, and the
// error names the member.
func ValidatePredicate(predicateType string, predicateJSON []byte) error {
	if _, ok := predicateFiles[predicateType]; !ok {
		return unknown(predicateType)
	}
	var v any
	if err := jsonv2.Unmarshal(predicateJSON, &v); err != nil {
		return &SchemaError{PredicateType: predicateType, Detail: "not JSON: " + err.Error()}
	}
	return ValidatePredicateValue(predicateType, v)
}

// ValidatePredicateValue is ValidatePredicate for a value already decoded
// (numbers as float64, or json.Number as jsonschema.UnmarshalJSON gives
// them); decoding is where repeated member names must have been refused.
func ValidatePredicateValue(predicateType string, v any) error {
	all, err := compiled()
	if err != nil {
		return fmt.Errorf("embedded predicate schemas: %w", err)
	}
	s, ok := all[predicateType]
	if !ok {
		return unknown(predicateType)
	}
	if fastValid(predicateType, v) {
		return nil // certainly valid under s (see fastpath.go)
	}
	if err := s.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return &SchemaError{PredicateType: predicateType, Detail: oneLine(ve)}
		}
		return &SchemaError{PredicateType: predicateType, Detail: err.Error()}
	}
	return nil
}

// oneLine flattens the validator's tree of causes into "at <location>: <rule>"
// clauses so the message names the offending field.
var printer = message.NewPrinter(language.English)

func oneLine(ve *jsonschema.ValidationError) string {
	var parts []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			parts = append(parts, fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(parts, "; ")
}
