package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Entry is what the boundary needs from one parsed audit line. Agentix
// writes one JSON object per line with sorted keys; timestamp, action and
// result are always present, and the other keys depend on the action.
// Unknown keys and unknown actions are normal and ignored here (the exact
// line bytes are kept elsewhere). A pointer field is nil when its key is
// absent or JSON null; a forbidden agent flag (source_modified,
// switched_system, requires_sudo) is also nil when its value is not a
// boolean, and the evaluator reads such a value from the line's members.
type Entry struct {
	Timestamp string
	Action    string
	Result    string

	Path             *string
	Patch            *string
	ProposalSaved    *string
	Mode             *string
	Goal             *string
	Request          *string
	Execute          *bool
	SourceModified   *bool
	SwitchedSystem   *bool
	RequiresSudo     *bool
	ApprovalRequired *bool
	PolicyViolations []string

	// Time is Timestamp parsed.
	Time time.Time

	// members are the line's top-level members in order, values as they
	// are written (copied out of the line).
	members []member
}

type member struct {
	name  string
	value jsontext.Value
}

// Member returns the value of the line's top-level member name, exactly as
// written, and whether it is present.
func (e *Entry) Member(name string) (jsontext.Value, bool) {
	for _, m := range e.members {
		if m.name == name {
			return m.value, true
		}
	}
	return nil, false
}

// Actions and results of Agentix that the boundary interprets.
const (
	ActionApply         = "apply"
	ActionControllerRun = "controller_run"
	ActionWorktreeRun   = "worktree_run"
	ActionPropose       = "propose"

	ResultApplied      = "applied"
	ResultPolicyDenied = "policy_denied"
)

// entryKeys are the keys ParseEntry interprets: a key equal to one of them
// case-insensitively (Unicode simple folding, as encoding/json v1 matched
// them) but not exactly makes the line ambiguous.
var entryKeys = []string{"timestamp", "action", "result", "path", "patch", "proposal_saved", "mode", "goal",
	"request", "execute", "source_modified", "switched_system", "requires_sudo", "approval_required", "policy_violations"}

// caseVariant returns the key of known that name equals case-insensitively
// but not exactly, if any.
func caseVariant(name string, known []string) (string, bool) {
	for _, k := range known {
		if name != k && strings.EqualFold(name, k) {
			return k, true
		}
	}
	return "", false
}

// ParseEntry parses one audit line (without its newline) with one strict
// JSON reading (github.com/go-json-experiment/json: exact-case keys, valid
// UTF-8, no duplicate member names at any depth, nothing after the object).
// n is the line's 1-based number, used in the error. Failures are
// *LineError values matching ErrNotJSON, ErrNotObject, ErrAmbiguousKey,
// ErrMissingKey or ErrBadValue. After ErrMissingKey or ErrBadValue the
// returned Entry still holds what could be read (the members, the action
// when it is a string), so that the forbidden flags of such a line are
// checked all the same.
func ParseEntry(n int64, raw []byte) (Entry, error) {
	var e Entry
	fail := func(kind error, msg string) (Entry, error) {
		return Entry{}, &LineError{Line: n, Kind: kind, Msg: msg}
	}
	syntax := func(err error) (Entry, error) {
		if errors.Is(err, jsontext.ErrDuplicateName) {
			return fail(ErrAmbiguousKey, err.Error())
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fail(ErrNotJSON, err.Error())
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	if k := dec.PeekKind(); k != '{' {
		if k != 0 && jsontext.Value(raw).IsValid() {
			return fail(ErrNotObject, "")
		}
		if _, err := dec.ReadValue(); err != nil {
			return syntax(err)
		}
		return fail(ErrNotJSON, "")
	}
	if _, err := dec.ReadToken(); err != nil {
		return syntax(err)
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return syntax(err)
		}
		name := tok.String() // before the next read voids tok
		v, err := dec.ReadValue()
		if err != nil {
			return syntax(err)
		}
		e.members = append(e.members, member{name, v.Clone()})
	}
	if _, err := dec.ReadToken(); err != nil {
		return syntax(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			return fail(ErrNotJSON, fmt.Sprintf("data after the object at offset %d", dec.InputOffset()))
		}
		return syntax(err)
	}
	for _, m := range e.members {
		if k, ok := caseVariant(m.name, entryKeys); ok {
			return fail(ErrAmbiguousKey, fmt.Sprintf("key %q is a case variant of %q", m.name, k))
		}
	}
	var first error
	bad := func(kind error, msg string) {
		if first == nil {
			first = &LineError{Line: n, Kind: kind, Msg: msg}
		}
	}
	required := func(dst *string, m member) {
		if m.value.Kind() != '"' || json.Unmarshal(m.value, dst) != nil {
			bad(ErrMissingKey, fmt.Sprintf("%s is %s, not a string", m.name, brief(m.value)))
		}
	}
	optString := func(dst **string, m member) {
		if err := json.Unmarshal(m.value, dst); err != nil {
			bad(ErrBadValue, fmt.Sprintf("%s is %s, not a string", m.name, brief(m.value)))
		}
	}
	optBool := func(dst **bool, m member) {
		if err := json.Unmarshal(m.value, dst); err != nil {
			bad(ErrBadValue, fmt.Sprintf("%s is %s, not a boolean", m.name, brief(m.value)))
		}
	}
	// A forbidden flag that is not a boolean is the evaluator's to judge
	// (a rule 3 violation on an agent-run event), not a parse failure.
	flag := func(dst **bool, m member) {
		if k := m.value.Kind(); k == 't' || k == 'f' {
			b := k == 't'
			*dst = &b
		}
	}
	seen := map[string]bool{}
	for _, m := range e.members {
		seen[m.name] = true
		switch m.name {
		case "timestamp":
			required(&e.Timestamp, m)
		case "action":
			required(&e.Action, m)
		case "result":
			required(&e.Result, m)
		case "path":
			optString(&e.Path, m)
		case "patch":
			optString(&e.Patch, m)
		case "proposal_saved":
			optString(&e.ProposalSaved, m)
		case "mode":
			optString(&e.Mode, m)
		case "goal":
			optString(&e.Goal, m)
		case "request":
			optString(&e.Request, m)
		case "execute":
			optBool(&e.Execute, m)
		case "approval_required":
			optBool(&e.ApprovalRequired, m)
		case "source_modified":
			flag(&e.SourceModified, m)
		case "switched_system":
			flag(&e.SwitchedSystem, m)
		case "requires_sudo":
			flag(&e.RequiresSudo, m)
		case "policy_violations":
			if err := json.Unmarshal(m.value, &e.PolicyViolations); err != nil {
				bad(ErrBadValue, fmt.Sprintf("policy_violations is %s, not a list of strings", brief(m.value)))
			}
		}
	}
	for _, k := range []string{"timestamp", "action", "result"} {
		if !seen[k] {
			bad(ErrMissingKey, k)
		}
	}
	switch {
	case seen["timestamp"] && e.Timestamp == "":
		bad(ErrMissingKey, "timestamp is empty")
	case seen["action"] && e.Action == "":
		bad(ErrMissingKey, "action is empty")
	}
	if first == nil {
		tm, err := time.Parse(time.RFC3339Nano, e.Timestamp)
		if err != nil {
			bad(ErrBadValue, "timestamp "+err.Error())
		}
		e.Time = tm
	}
	return e, first
}

// brief is a JSON value for a message, shortened.
func brief(v jsontext.Value) string {
	const max = 40
	if len(v) > max {
		return string(v[:max]) + "…"
	}
	return string(v)
}
