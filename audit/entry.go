package audit

import (
	"bytes"
	"encoding/json"
	"time"
)

// Entry is what the boundary needs from one parsed audit line. Agentix
// writes one JSON object per line with sorted keys; timestamp, action and
// result are always present, and the other keys depend on the action.
// Unknown keys and unknown actions are normal and ignored here (the exact
// line bytes are kept elsewhere). A pointer field is nil when its key is
// absent or JSON null.
type Entry struct {
	Timestamp string `json:"timestamp"`
	Action    string `json:"action"`
	Result    string `json:"result"`

	Path             *string  `json:"path"`
	Patch            *string  `json:"patch"`
	ProposalSaved    *string  `json:"proposal_saved"`
	Mode             *string  `json:"mode"`
	Goal             *string  `json:"goal"`
	Request          *string  `json:"request"`
	Execute          *bool    `json:"execute"`
	SourceModified   *bool    `json:"source_modified"`
	SwitchedSystem   *bool    `json:"switched_system"`
	RequiresSudo     *bool    `json:"requires_sudo"`
	ApprovalRequired *bool    `json:"approval_required"`
	PolicyViolations []string `json:"policy_violations"`

	// Time is Timestamp parsed.
	Time time.Time `json:"-"`
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

// ParseEntry parses one audit line (without its newline). n is the line's
// 1-based number, used in the error. Failures are *LineError values matching
// ErrNotJSON, ErrNotObject, ErrMissingKey or ErrBadValue.
func ParseEntry(n int64, raw []byte) (Entry, error) {
	t := bytes.TrimLeft(raw, " \t\r")
	if len(t) == 0 || t[0] != '{' {
		if json.Valid(raw) {
			return Entry{}, &LineError{Line: n, Kind: ErrNotObject}
		}
		return Entry{}, &LineError{Line: n, Kind: ErrNotJSON}
	}
	// The fast path decodes the usual flat line without reflection; any
	// line it is unsure of goes through encoding/json, which gives the
	// same Entry or the exact error.
	e, resultString, ok := parseFast(raw)
	if !ok {
		e = Entry{}
		if err := json.Unmarshal(raw, &e); err != nil {
			if _, ok := err.(*json.UnmarshalTypeError); ok {
				return Entry{}, &LineError{Line: n, Kind: ErrBadValue, Msg: err.Error()}
			}
			return Entry{}, &LineError{Line: n, Kind: ErrNotJSON, Msg: err.Error()}
		}
		// A missing key and a key of the wrong type are told apart
		// through a map of raw values.
		resultString = e.Result != "" || hasKey(raw, "result")
	}
	switch {
	case e.Timestamp == "":
		return Entry{}, &LineError{Line: n, Kind: ErrMissingKey, Msg: "timestamp"}
	case e.Action == "":
		return Entry{}, &LineError{Line: n, Kind: ErrMissingKey, Msg: "action"}
	case e.Result == "" && !resultString:
		return Entry{}, &LineError{Line: n, Kind: ErrMissingKey, Msg: "result"}
	}
	tm, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return Entry{}, &LineError{Line: n, Kind: ErrBadValue, Msg: "timestamp " + err.Error()}
	}
	e.Time = tm
	return e, nil
}

// hasKey reports whether the JSON object raw has a string value at key.
func hasKey(raw []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	v, ok := m[key]
	return ok && len(v) > 0 && v[0] == '"'
}

// Flag reports whether the line's JSON object has key set to true. It is
// used for keys the policy adds to the forbidden agent flags.
func Flag(raw []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	return bytes.Equal(bytes.TrimSpace(m[key]), []byte("true"))
}
