package audit

import (
	"errors"
	"fmt"
)

// Errors of the JSONL reader and line parser. A *LineError matches one of
// them with errors.Is.
var (
	// ErrNotJSON: the line is not valid JSON.
	ErrNotJSON = errors.New("line is not valid JSON")
	// ErrNotObject: the line is JSON but not one object.
	ErrNotObject = errors.New("line is not a JSON object")
	// ErrMissingKey: a key every Agentix line carries (timestamp, action,
	// result) is absent or not a string.
	ErrMissingKey = errors.New("line lacks a required key")
	// ErrBadValue: a key the boundary depends on has a value of the wrong
	// type (for example "source_modified": "no"), or the timestamp is not
	// ISO-8601.
	ErrBadValue = errors.New("line has a key of the wrong type")
	// ErrLineTooLong: a line exceeds MaxLineSize. Its bytes are kept and
	// reading goes on with the next line.
	ErrLineTooLong = errors.New("line too long")
	// ErrAmbiguousKey: the line names a member twice (at any depth, after
	// unescaping), or has a key that equals a key the boundary reads
	// case-insensitively but not exactly ("SOURCE_MODIFIED"). Readers
	// disagree on such a line (Go's encoding/json folds case and keeps the
	// last duplicate, Python keeps the exact key), so nobody can tell what
	// the agent meant: always a rule 3 violation.
	ErrAmbiguousKey = errors.New("line has a duplicate or case-variant key")
)

// LineError says why line Line (1-based) could not be parsed. The line's
// bytes are kept and ingested regardless.
type LineError struct {
	Line int64
	Kind error // one of the Err* values above
	Msg  string
}

func (e *LineError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("audit line %d: %v", e.Line, e.Kind)
	}
	return fmt.Sprintf("audit line %d: %v: %s", e.Line, e.Kind, e.Msg)
}

func (e *LineError) Is(target error) bool { return target == e.Kind }

// Errors of the diff-header parser.
var (
	// ErrNotDiff: the patch contains no file header at all.
	ErrNotDiff = errors.New("patch has no diff headers")
	// ErrBadDiff: a header or hunk is malformed.
	ErrBadDiff = errors.New("malformed diff")
)

// DiffError names the 1-based line of a patch where parsing failed.
type DiffError struct {
	Line int
	Kind error // ErrNotDiff or ErrBadDiff
	Msg  string
}

func (e *DiffError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("patch: %v: %s", e.Kind, e.Msg)
	}
	return fmt.Sprintf("patch line %d: %v: %s", e.Line, e.Kind, e.Msg)
}

func (e *DiffError) Is(target error) bool { return target == e.Kind }

// ErrBadPolicy is matched by every boundary-policy parse failure.
var ErrBadPolicy = errors.New("invalid boundary policy")
