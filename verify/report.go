package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
)

// Errors this package adds to those of attest. Test with errors.Is.
var (
	// ErrRollback: the log served a checkpoint smaller than one this
	// auditor accepted before.
	ErrRollback = errors.New("rollback: checkpoint smaller than one accepted before")
	// ErrSplitView: two checkpoints of one log and size with different
	// roots.
	ErrSplitView = errors.New("split view: two roots for one tree size")
	// ErrInconsistent: a larger checkpoint is not consistent with one
	// accepted before (no valid consistency proof): another form of split
	// view.
	ErrInconsistent = errors.New("checkpoint not consistent with one accepted before")
	// ErrRootMismatch: replaying the log's entries gives another root than
	// its checkpoint.
	ErrRootMismatch = errors.New("replayed entries do not hash to the checkpoint's root")
	// ErrEntryMismatch: an entry bundle and the level-0 tile covering it
	// disagree on an entry's leaf hash.
	ErrEntryMismatch = errors.New("entry does not match its leaf hash in the tiles")
	// ErrIDMismatch: bytes served for an attestation id do not hash to it.
	ErrIDMismatch = errors.New("attestation bytes do not match their id")
	// ErrWrongPredicate: an attestation has another predicate type than its
	// place requires.
	ErrWrongPredicate = errors.New("attestation has the wrong predicate type")
	// ErrUnavailable: something could not be fetched or read, so it could
	// not be checked (network, missing data). Never a finding by itself.
	ErrUnavailable = errors.New("could not check")
)

// Finding is one failed or unavailable check.
type Finding struct {
	// Check names what was checked: "envelope", "checkpoint", "inclusion",
	// "consistency", "replay", "car", "closure", "state", ...
	Check string `json:"check"`
	// Reason is a stable short code for why (see Reason).
	Reason string `json:"reason"`
	// Message is the full explanation.
	Message string `json:"message"`
	// Entry is the log index concerned, when there is one.
	Entry *uint64 `json:"entry,omitempty"`
	// Subject names the attestation, block or file concerned.
	Subject string `json:"subject,omitempty"`
	// Line is the 1-based audit log line concerned, when there is one.
	Line int64 `json:"line,omitempty"`

	Err error `json:"-"`
}

// Report is the outcome of one auditor command: what was proven, what
// failed, and what could not be checked. Only a report with no failures and
// nothing uncertain proves its target.
type Report struct {
	Command   string         `json:"command"`
	Target    string         `json:"target"`
	OK        bool           `json:"ok"`
	Proven    []string       `json:"proven"`
	Failures  []Finding      `json:"failures"`
	Uncertain []Finding      `json:"uncertain"`
	Details   map[string]any `json:"details,omitempty"`
}

// NewReport starts a report.
func NewReport(command, target string) *Report {
	return &Report{Command: command, Target: target, Proven: []string{}, Failures: []Finding{}, Uncertain: []Finding{}, Details: map[string]any{}}
}

// Prove records a proven claim.
func (r *Report) Prove(format string, args ...any) {
	r.Proven = append(r.Proven, fmt.Sprintf(format, args...))
}

// Fail records err against check: as uncertain when it matches
// ErrUnavailable, else as a failure.
func (r *Report) Fail(check string, entry *uint64, subject string, err error) {
	f := Finding{Check: check, Reason: Reason(err), Message: err.Error(), Entry: entry, Subject: subject, Err: err}
	if errors.Is(err, ErrUnavailable) {
		r.Uncertain = append(r.Uncertain, f)
		return
	}
	r.Failures = append(r.Failures, f)
}

// failLine is Fail naming the 1-based audit line too.
func (r *Report) failLine(check string, entry *uint64, subject string, line int64, err error) {
	r.Fail(check, entry, subject, err)
	if errors.Is(err, ErrUnavailable) {
		r.Uncertain[len(r.Uncertain)-1].Line = line
	} else {
		r.Failures[len(r.Failures)-1].Line = line
	}
}

// Done sets OK and returns the report.
func (r *Report) Done() *Report {
	r.OK = len(r.Failures) == 0 && len(r.Uncertain) == 0
	return r
}

// FailedError is returned by Report.Err when some check failed.
type FailedError struct{ R *Report }

func (e *FailedError) Error() string {
	return fmt.Sprintf("%s %s: verification failed (%d failure(s)): %s", e.R.Command, e.R.Target, len(e.R.Failures), e.R.Failures[0].Message)
}

// UncertainError is returned by Report.Err when nothing failed but
// something could not be checked.
type UncertainError struct{ R *Report }

func (e *UncertainError) Error() string {
	return fmt.Sprintf("%s %s: could not check everything (%d item(s)): %s", e.R.Command, e.R.Target, len(e.R.Uncertain), e.R.Uncertain[0].Message)
}

func (e *UncertainError) Unwrap() error { return ErrUnavailable }

// Err is nil when the report proves its target, a *FailedError when a check
// failed (failures take precedence), else an *UncertainError.
func (r *Report) Err() error {
	switch {
	case len(r.Failures) > 0:
		return &FailedError{r}
	case len(r.Uncertain) > 0:
		return &UncertainError{r}
	}
	return nil
}

// reasons maps errors to stable reason codes, most specific first.
var reasons = []struct {
	err  error
	code string
}{
	{ErrUnavailable, "unavailable"},
	{ErrRollback, "rollback"},
	{ErrSplitView, "split-view"},
	{ErrInconsistent, "inconsistent-checkpoint"},
	{ErrRootMismatch, "root-mismatch"},
	{ErrEntryMismatch, "entry-mismatch"},
	{ErrIDMismatch, "id-mismatch"},
	{ErrWrongPredicate, "wrong-predicate"},
	{attest.ErrBlockMismatch, "block-hash-mismatch"},
	{attest.ErrDuplicateSigner, "duplicate-signer"},
	{attest.ErrBelowThreshold, "below-threshold"},
	{attest.ErrTamperedPayload, "forged-signature"},
	{attest.ErrUntrustedKey, "untrusted-signer"},
	{attest.ErrNoSignature, "no-signature"},
	{attest.ErrWrongPayloadType, "wrong-payload-type"},
	{attest.ErrMalformedEnvelope, "malformed-envelope"},
	{attest.ErrBadStatement, "bad-statement"},
	{attest.ErrUnknownPredicate, "unknown-predicate"},
	{attest.ErrSchema, "schema"},
	{attest.ErrWitnessQuorum, "witness-quorum"},
	{attest.ErrCheckpoint, "checkpoint-signature"},
	{attest.ErrInclusionProof, "inclusion-proof"},
	{attest.ErrBadBundle, "bad-bundle"},
	{closure.ErrHashMismatch, "nar-hash-mismatch"},
	{closure.ErrIncomplete, "closure-incomplete"},
}

// Reason returns the stable reason code of err ("other" when none fits).
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "other"
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the human summary: the verdict, what was proven, and
// each failure with its reason and the entry it concerns.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "PROVEN"
	switch {
	case len(r.Failures) > 0:
		verdict = "FAILED"
	case len(r.Uncertain) > 0:
		verdict = "NOT CHECKED"
	}
	fmt.Fprintf(&b, "%s %s: %s\n", r.Command, r.Target, verdict)
	for _, p := range r.Proven {
		fmt.Fprintf(&b, "  ok    %s\n", p)
	}
	line := func(tag string, f Finding) {
		fmt.Fprintf(&b, "  %-5s [%s/%s]", tag, f.Check, f.Reason)
		if f.Entry != nil {
			fmt.Fprintf(&b, " entry %d", *f.Entry)
		}
		if f.Subject != "" {
			fmt.Fprintf(&b, " %s", f.Subject)
		}
		if f.Line > 0 {
			fmt.Fprintf(&b, " line %d", f.Line)
		}
		fmt.Fprintf(&b, ": %s\n", f.Message)
	}
	for _, f := range r.Failures {
		line("FAIL", f)
	}
	for _, f := range r.Uncertain {
		line("??", f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ptr[T any](v T) *T { return &v }

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnavailable, fmt.Sprintf(format, args...))
}
