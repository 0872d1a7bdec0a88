package audit

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Rule numbers one safety-boundary rule of the design (DESIGN.md, "Safety
// boundary").
type Rule int

const (
	// RuleProposal (1): every applied patch was saved by a controller or
	// worktree run with source_modified false, and its bytes at apply time
	// match the bytes stored when it was proposed.
	RuleProposal Rule = 1
	// RuleApproval (2): with approvers configured, every applied patch has
	// a threshold approval recorded no later than the apply.
	RuleApproval Rule = 2
	// RuleSandbox (3): no agent-run event sets a forbidden flag, and no
	// policy-denied request is later applied.
	RuleSandbox Rule = 3
	// RuleAppendOnly (4): the log is consistent with every earlier
	// snapshot.
	RuleAppendOnly Rule = 4
	// RuleClosure (5): a running closure's attestation links only to applies
	// that satisfy rules 1 and 2.
	RuleClosure Rule = 5
)

func (r Rule) String() string { return strconv.Itoa(int(r)) }

// Reasons for violations. A *Violation matches its reason with errors.Is.
var (
	ErrNoProposal       = errors.New("applied patch was never saved by a controller/worktree run")
	ErrSourceModified   = errors.New("applied patch comes from a run that modified the source")
	ErrPatchChanged     = errors.New("applied patch bytes differ from the proposal stored then")
	ErrPatchMissing     = errors.New("patch file not found")
	ErrPatchUnnamed     = errors.New("apply line names no patch of this workspace")
	ErrNoApproval       = errors.New("applied patch lacks a threshold approval")
	ErrApprovalLate     = errors.New("approval recorded after the apply")
	ErrAgentFlag        = errors.New("agent-run event sets a forbidden flag")
	ErrDeniedApplied    = errors.New("policy-denied request was later applied")
	ErrUnparseable      = errors.New("audit line is unparseable")
	ErrOutsideWorkspace = errors.New("path leads out of the workspace")
	ErrNotAppendOnly    = errors.New("audit log is not a continuation of the snapshot ingested before")
	ErrClosureBadApply  = errors.New("running closure links to an apply that breaks rule 1 or 2")
	ErrClosureUnknown   = errors.New("running closure links to an unknown apply")
	ErrBoundaryViolated = errors.New("safety boundary violated")
)

// Violation is one broken rule. Line is the 1-based audit line it concerns
// (0 when it concerns no single line); Patch the workspace-relative patch
// path, if any.
type Violation struct {
	Rule  Rule   `json:"rule"`
	Line  int64  `json:"line"`
	Patch string `json:"patch,omitempty"`
	// PatchCID is the stored Patch record of Patch, when known: what an
	// approver signs (agentix-store approve PATCH_CID).
	PatchCID string `json:"patchCid,omitempty"`
	Reason   error  `json:"-"`
	Message  string `json:"message"`
}

func (v *Violation) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rule %d", v.Rule)
	if v.Line > 0 {
		fmt.Fprintf(&b, ", audit line %d", v.Line)
	}
	if v.Patch != "" {
		fmt.Fprintf(&b, ", patch %s", v.Patch)
	}
	if v.PatchCID != "" {
		fmt.Fprintf(&b, " (%s)", v.PatchCID)
	}
	fmt.Fprintf(&b, ": %s", v.Message)
	return b.String()
}

func (v *Violation) Is(target error) bool { return target == v.Reason || target == ErrBoundaryViolated }

func newViolation(r Rule, line int64, patch string, reason error, detail string) Violation {
	msg := reason.Error()
	if detail != "" {
		msg += ": " + detail
	}
	return Violation{Rule: r, Line: line, Patch: patch, Reason: reason, Message: msg}
}

// reasonByMessage restores Reason of a violation decoded from JSON.
var reasons = []error{ErrNoProposal, ErrSourceModified, ErrPatchChanged, ErrPatchMissing, ErrPatchUnnamed,
	ErrNoApproval, ErrApprovalLate, ErrAgentFlag, ErrDeniedApplied, ErrUnparseable, ErrAmbiguousKey, ErrOutsideWorkspace, ErrNotAppendOnly,
	ErrClosureBadApply, ErrClosureUnknown}

func (v *Violation) restoreReason() {
	for _, r := range reasons {
		if strings.HasPrefix(v.Message, r.Error()) {
			v.Reason = r
			return
		}
	}
}

// Finding is something reported that is not (under the policy in force) a
// violation: an unparseable line, a proposal whose patch is missing.
type Finding struct {
	Line    int64  `json:"line"`
	Patch   string `json:"patch,omitempty"`
	Message string `json:"message"`
}

// PatchInfo is what was found at a workspace-relative patch path at the
// moment a line naming it was ingested.
type PatchInfo struct {
	Found  bool   `json:"found"`
	SHA256 string `json:"sha256,omitempty"` // hex
	CID    string `json:"cid,omitempty"`    // Patch record CID, when stored
	Size   int64  `json:"size,omitempty"`
}

// PatchLookup returns the current patch at a workspace-relative path. A
// missing file is PatchInfo{Found: false} with a nil error; other errors
// abort the evaluation.
type PatchLookup func(rel string) (PatchInfo, error)

// ProposalRec is a proposal line: a controller/worktree run that saved a
// patch.
type ProposalRec struct {
	Line           int64     `json:"line"`
	Action         string    `json:"action"`
	Mode           string    `json:"mode,omitempty"`
	Goal           string    `json:"goal,omitempty"`
	SourceModified bool      `json:"sourceModified"`
	Patch          PatchInfo `json:"patch"`
	Rel            string    `json:"rel"`
}

// ApplyRec is an apply line with result "applied".
type ApplyRec struct {
	Line      int64     `json:"line"`
	Rel       string    `json:"rel"`
	Time      time.Time `json:"time"`
	Patch     PatchInfo `json:"patch"`          // at apply time
	Proposal  int64     `json:"proposal"`       // line of the proposal, 0 if none
	ProposalH string    `json:"proposalSha256"` // sha256 stored at proposal time
	Rule1     bool      `json:"rule1"`          // rule 1 held for this apply
}

// State is the evaluator's memory between lines. MemState keeps it in
// memory; the ingester keeps it in the database so that an incremental
// ingest resumes without re-reading earlier lines.
type State interface {
	Proposal(rel string) (ProposalRec, bool, error)
	PutProposal(ProposalRec) error
	DeniedRequest(request string) (line int64, ok bool, err error)
	PutDeniedRequest(request string, line int64) error
	PutApply(ApplyRec) error
	Applies() ([]ApplyRec, error)
	AddViolation(Violation) error
	Violations() ([]Violation, error)
	AddFinding(Finding) error
	Findings() ([]Finding, error)
}

// MemState is an in-memory State.
type MemState struct {
	Props     map[string]ProposalRec
	Denied    map[string]int64
	ApplyRecs []ApplyRec
	Viols     []Violation
	FindingsL []Finding
}

// NewMemState returns an empty MemState.
func NewMemState() *MemState {
	return &MemState{Props: map[string]ProposalRec{}, Denied: map[string]int64{}}
}

func (m *MemState) Proposal(rel string) (ProposalRec, bool, error) {
	p, ok := m.Props[rel]
	return p, ok, nil
}
func (m *MemState) PutProposal(p ProposalRec) error { m.Props[p.Rel] = p; return nil }
func (m *MemState) DeniedRequest(r string) (int64, bool, error) {
	l, ok := m.Denied[r]
	return l, ok, nil
}
func (m *MemState) PutDeniedRequest(r string, l int64) error {
	if _, ok := m.Denied[r]; !ok {
		m.Denied[r] = l
	}
	return nil
}
func (m *MemState) PutApply(a ApplyRec) error        { m.ApplyRecs = append(m.ApplyRecs, a); return nil }
func (m *MemState) Applies() ([]ApplyRec, error)     { return m.ApplyRecs, nil }
func (m *MemState) AddViolation(v Violation) error   { m.Viols = append(m.Viols, v); return nil }
func (m *MemState) Violations() ([]Violation, error) { return m.Viols, nil }
func (m *MemState) AddFinding(f Finding) error       { m.FindingsL = append(m.FindingsL, f); return nil }
func (m *MemState) Findings() ([]Finding, error)     { return m.FindingsL, nil }

// Evaluator checks the line-local rules (1 and 3) as lines stream in, and
// rules 2 and 5 over the recorded applies when Result is called.
type Evaluator struct {
	policy *Policy
	state  State
	lookup PatchLookup
	flags  []string
	human  map[string]bool
}

// NewEvaluator returns an evaluator over state. lookup is called once per
// line that names a patch (proposal_saved, patch), at the moment the line is
// added: that is what "the bytes stored then" means.
func NewEvaluator(p *Policy, state State, lookup PatchLookup) *Evaluator {
	if p == nil {
		p = &Policy{}
	}
	h := map[string]bool{}
	for _, a := range HumanActions {
		h[a] = true
	}
	return &Evaluator{policy: p, state: state, lookup: lookup, flags: p.forbiddenFlags(), human: h}
}

// Add evaluates one line. Lines must be added in order, each once.
//
// A line with a duplicate or case-variant key is a rule 3 violation
// whatever the policy. Any line that is a JSON object has its forbidden
// agent flags checked, even when another of its keys is missing or of the
// wrong type; then an unparseable line is a finding, or a rule 3
// violation under DenyUnparseableLines.
func (ev *Evaluator) Add(l *Line) error {
	if errors.Is(l.Err, ErrAmbiguousKey) {
		var le *LineError
		detail := l.Err.Error()
		if errors.As(l.Err, &le) {
			detail = le.Msg
		}
		return ev.state.AddViolation(newViolation(RuleSandbox, l.Number, "", ErrAmbiguousKey, detail))
	}
	e := &l.Entry
	for _, m := range e.members {
		if k, ok := caseVariant(m.name, ev.flags); ok {
			return ev.state.AddViolation(newViolation(RuleSandbox, l.Number, "", ErrAmbiguousKey,
				fmt.Sprintf("key %q is a case variant of the forbidden flag %q", m.name, k)))
		}
	}
	if !ev.human[e.Action] {
		var set []string
		for _, f := range ev.flags {
			v, ok := e.Member(f)
			switch {
			case !ok || string(v) == "false":
			case string(v) == "true":
				set = append(set, f+": true")
			default:
				set = append(set, fmt.Sprintf("%s: %s (a forbidden flag must be false or absent)", f, brief(v)))
			}
		}
		if len(set) > 0 {
			what := e.Action + " event"
			if e.Action == "" {
				what = "event without a string action"
			}
			if err := ev.state.AddViolation(newViolation(RuleSandbox, l.Number, "", ErrAgentFlag,
				fmt.Sprintf("%s has %s", what, strings.Join(set, ", ")))); err != nil {
				return err
			}
		}
	}
	if l.Err != nil {
		if ev.policy.DenyUnparseableLines {
			return ev.state.AddViolation(newViolation(RuleSandbox, l.Number, "", ErrUnparseable, l.Err.Error()))
		}
		return ev.state.AddFinding(Finding{Line: l.Number, Message: l.Err.Error()})
	}
	switch {
	case e.Action == ActionPropose && e.Result == ResultPolicyDenied && e.Request != nil:
		return ev.state.PutDeniedRequest(*e.Request, l.Number)
	case (e.Action == ActionControllerRun || e.Action == ActionWorktreeRun) && e.ProposalSaved != nil && *e.ProposalSaved != "":
		return ev.addProposal(l)
	case e.Action == ActionApply && e.Result == ResultApplied:
		return ev.addApply(l)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (ev *Evaluator) addProposal(l *Line) error {
	e := &l.Entry
	rel, ok := ResolvePath(*e.ProposalSaved)
	if !ok {
		if rel, out := outsidePath(*e.ProposalSaved); out {
			return ev.state.AddViolation(newViolation(RuleProposal, l.Number, rel, ErrOutsideWorkspace,
				fmt.Sprintf("proposal_saved %q resolves to %s", *e.ProposalSaved, rel)))
		}
		return ev.state.AddFinding(Finding{Line: l.Number, Message: fmt.Sprintf("proposal_saved %q is not under %s/", *e.ProposalSaved, AgentixDir)})
	}
	pi, escaped, err := ev.lookupIn(l.Number, rel, "proposal_saved")
	if err != nil {
		return err
	}
	rec := ProposalRec{Line: l.Number, Action: e.Action, Mode: deref(e.Mode), Goal: deref(e.Goal),
		SourceModified: e.SourceModified == nil || *e.SourceModified, Patch: pi, Rel: rel}
	if e.SourceModified == nil {
		// Absent source_modified cannot show the run was sandboxed.
		rec.SourceModified = true
	}
	if !pi.Found && !escaped {
		if ev.policy.DenyMissingPatches {
			if err := ev.state.AddViolation(newViolation(RuleProposal, l.Number, rel, ErrPatchMissing, "proposal_saved names it")); err != nil {
				return err
			}
		} else if err := ev.state.AddFinding(Finding{Line: l.Number, Patch: rel, Message: ErrPatchMissing.Error() + ": proposal_saved names it"}); err != nil {
			return err
		}
	}
	return ev.state.PutProposal(rec)
}

// lookupIn looks up the patch rel that line names (under key). A patch
// whose reading would leave the workspace is a rule 1 violation at the
// line naming the path, and counts as not found.
func (ev *Evaluator) lookupIn(line int64, rel, key string) (PatchInfo, bool, error) {
	pi, err := ev.lookup(rel)
	var oe *OutsideError
	if errors.As(err, &oe) {
		return PatchInfo{}, true, ev.state.AddViolation(newViolation(RuleProposal, line, rel, ErrOutsideWorkspace,
			fmt.Sprintf("%s names %s; not read", key, oe.Error())))
	}
	return pi, false, err
}

func (ev *Evaluator) addApply(l *Line) error {
	e := &l.Entry
	if e.Patch == nil {
		return ev.state.AddViolation(newViolation(RuleProposal, l.Number, "", ErrPatchUnnamed, "no patch key"))
	}
	rel, ok := ResolvePath(*e.Patch)
	if !ok {
		if rel, out := outsidePath(*e.Patch); out {
			return ev.state.AddViolation(newViolation(RuleProposal, l.Number, rel, ErrOutsideWorkspace,
				fmt.Sprintf("patch %q resolves to %s", *e.Patch, rel)))
		}
		return ev.state.AddViolation(newViolation(RuleProposal, l.Number, "", ErrPatchUnnamed, fmt.Sprintf("patch %q is not under %s/", *e.Patch, AgentixDir)))
	}
	pi, escaped, err := ev.lookupIn(l.Number, rel, "patch")
	if err != nil {
		return err
	}
	a := ApplyRec{Line: l.Number, Rel: rel, Time: e.Time, Patch: pi}
	prop, found, err := ev.state.Proposal(rel)
	if err != nil {
		return err
	}
	var v *Violation
	switch {
	case escaped:
		// Already reported at this line (lookupIn).
	case !found:
		x := newViolation(RuleProposal, l.Number, rel, ErrNoProposal, "")
		v = &x
	case prop.SourceModified:
		x := newViolation(RuleProposal, l.Number, rel, ErrSourceModified, fmt.Sprintf("%s at line %d", prop.Action, prop.Line))
		v = &x
	case !prop.Patch.Found:
		x := newViolation(RuleProposal, l.Number, rel, ErrPatchMissing, fmt.Sprintf("not stored when proposed at line %d", prop.Line))
		v = &x
	case !pi.Found:
		x := newViolation(RuleProposal, l.Number, rel, ErrPatchMissing, "at apply time")
		v = &x
	case pi.SHA256 != prop.Patch.SHA256:
		x := newViolation(RuleProposal, l.Number, rel, ErrPatchChanged, fmt.Sprintf("sha256 %s at apply, %s when proposed at line %d", short(pi.SHA256), short(prop.Patch.SHA256), prop.Line))
		v = &x
	}
	if found {
		a.Proposal, a.ProposalH = prop.Line, prop.Patch.SHA256
	}
	a.Rule1 = v == nil && !escaped
	if v != nil {
		if err := ev.state.AddViolation(*v); err != nil {
			return err
		}
	}
	// A policy-denied request must never be applied: the apply names its
	// request directly, or through the goal of the run that proposed it.
	for _, req := range []string{deref(e.Request), prop.Goal} {
		if req == "" {
			continue
		}
		if dl, ok, err := ev.state.DeniedRequest(req); err != nil {
			return err
		} else if ok && dl < l.Number {
			if err := ev.state.AddViolation(newViolation(RuleSandbox, l.Number, rel, ErrDeniedApplied,
				fmt.Sprintf("request %q denied at line %d", req, dl))); err != nil {
				return err
			}
			break
		}
	}
	return ev.state.PutApply(a)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Approval is a verified approval of a patch: the distinct approver key ids
// whose signatures verified, and when the approval was recorded (the time
// its attestation was logged; zero when unknown, in which case it is taken
// to precede every apply).
type Approval struct {
	ID          string    // attestation id, for reports
	PatchSHA256 string    // hex
	Signers     []string  // key ids with valid signatures
	Time        time.Time // zero if unknown
}

// RunningConfig is a running-config attestation reduced to what rule 5
// needs: the audit lines of the applies it links to, and the apply
// attestation ids it names that match no apply of this log.
type RunningConfig struct {
	ID         string
	ApplyLines []int64
	Unknown    []string
	// PatchSHA256, when set for a line, is the patch sha256 (hex) the apply
	// attestation claims for that line; an apply line with other patch
	// bytes breaks rule 5.
	PatchSHA256 map[int64]string
}

// ApplyClaim is an apply/v1 attestation reduced to what rule 5 needs: its
// id, the 1-based audit line it names and the patch sha256 it claims.
type ApplyClaim struct {
	ID          string
	Line        int64
	PatchSHA256 string
}

// LinkRunningConfig resolves the apply attestation ids a running-config/v1
// attestation (id) names through the apply claims known: each id found
// becomes its audit line, the others are Unknown.
func LinkRunningConfig(id string, applyIDs []string, claims []ApplyClaim) RunningConfig {
	by := map[string]ApplyClaim{}
	for _, c := range claims {
		by[c.ID] = c
	}
	rc := RunningConfig{ID: id, PatchSHA256: map[int64]string{}}
	for _, a := range applyIDs {
		c, ok := by[a]
		if !ok {
			rc.Unknown = append(rc.Unknown, a)
			continue
		}
		rc.ApplyLines = append(rc.ApplyLines, c.Line)
		if c.PatchSHA256 != "" {
			rc.PatchSHA256[c.Line] = c.PatchSHA256
		}
	}
	return rc
}

// Inputs are what rules 2, 4 and 5 need beyond the lines.
type Inputs struct {
	Approvals      []Approval
	RunningConfigs []RunningConfig
	// AppendOnly holds rule 4 violations found by the ingester.
	AppendOnly []Violation
	// Snapshots are earlier attested snapshots the log must continue
	// (rule 4); only CheckWorkspace reads them.
	Snapshots []AttestedSnapshot
}

// Result is the outcome of a boundary check.
type Result struct {
	Passed         bool        `json:"passed"`
	SingleOperator bool        `json:"singleOperator"`
	Policy         string      `json:"policy"` // hex sha256 of the policy
	Lines          int64       `json:"lines"`
	Applies        int         `json:"applies"`
	Violations     []Violation `json:"violations"`
	Findings       []Finding   `json:"findings"`
	// ApprovedBy maps an apply line to the approval ids that met the
	// threshold (approver mode only).
	ApprovedBy map[int64][]string `json:"approvedBy,omitempty"`
}

// Err returns nil when the boundary held, else an error wrapping every
// violation (errors.Is matches ErrBoundaryViolated and each reason;
// errors.As yields the first *Violation).
func (r *Result) Err() error {
	if r.Passed {
		return nil
	}
	errs := make([]error, 0, len(r.Violations))
	for i := range r.Violations {
		errs = append(errs, &r.Violations[i])
	}
	return errors.Join(errs...)
}

// Result evaluates rules 2 and 5 over the applies seen so far and returns
// the complete verdict. lines is the number of lines evaluated.
func (ev *Evaluator) Result(lines int64, in Inputs) (*Result, error) {
	viols, err := ev.state.Violations()
	if err != nil {
		return nil, err
	}
	viols = slices.Clone(viols)
	for i := range viols {
		if viols[i].Reason == nil {
			viols[i].restoreReason()
		}
	}
	findings, err := ev.state.Findings()
	if err != nil {
		return nil, err
	}
	// Rules 2 and 5 look at every apply; in single-operator mode without
	// running configs nothing does, and a State that counts its applies
	// spares reading them (keeping an incremental ingest's cost
	// proportional to its new lines).
	var applies []ApplyRec
	nApplies := 0
	if c, ok := ev.state.(interface{ ApplyCount() (int, error) }); ok && ev.policy.SingleOperator() && len(in.RunningConfigs) == 0 {
		if nApplies, err = c.ApplyCount(); err != nil {
			return nil, err
		}
	} else {
		if applies, err = ev.state.Applies(); err != nil {
			return nil, err
		}
		nApplies = len(applies)
	}
	res := &Result{SingleOperator: ev.policy.SingleOperator(), Policy: ev.policy.Digest(), Lines: lines,
		Applies: nApplies, Findings: slices.Clone(findings)}
	viols = append(viols, in.AppendOnly...)
	rule2 := map[int64]bool{}
	if !res.SingleOperator {
		res.ApprovedBy = map[int64][]string{}
		keys := map[string]bool{}
		for _, k := range ev.policy.Approvers.Keys {
			keys[k] = true
		}
		for _, a := range applies {
			sha := a.ProposalH
			if sha == "" {
				sha = a.Patch.SHA256
			}
			signers := map[string]bool{}
			late := 0
			var ids []string
			for _, ap := range in.Approvals {
				if ap.PatchSHA256 == "" || ap.PatchSHA256 != sha {
					continue
				}
				if !ap.Time.IsZero() && !a.Time.IsZero() && ap.Time.After(a.Time) {
					late++
					continue
				}
				n := 0
				for _, s := range ap.Signers {
					if keys[s] && !signers[s] {
						signers[s] = true
						n++
					}
				}
				if n > 0 {
					ids = append(ids, ap.ID)
				}
			}
			if len(signers) >= ev.policy.Approvers.Threshold {
				res.ApprovedBy[a.Line] = ids
				continue
			}
			rule2[a.Line] = true
			reason, detail := ErrNoApproval, fmt.Sprintf("%d of %d required approver signatures", len(signers), ev.policy.Approvers.Threshold)
			if late > 0 {
				reason, detail = ErrApprovalLate, detail+fmt.Sprintf("; %d approval(s) recorded after the apply", late)
			}
			v := newViolation(RuleApproval, a.Line, a.Rel, reason, detail)
			v.PatchCID = a.Patch.CID
			viols = append(viols, v)
		}
	}
	byLine := map[int64]ApplyRec{}
	for _, a := range applies {
		byLine[a.Line] = a
	}
	for _, rc := range in.RunningConfigs {
		for _, ln := range rc.ApplyLines {
			a, ok := byLine[ln]
			if !ok {
				viols = append(viols, newViolation(RuleClosure, ln, "", ErrClosureUnknown, fmt.Sprintf("running config %s names line %d, which is no applied patch", rc.ID, ln)))
				continue
			}
			switch want := rc.PatchSHA256[ln]; {
			case !a.Rule1 || rule2[ln]:
				viols = append(viols, newViolation(RuleClosure, ln, a.Rel, ErrClosureBadApply, "running config "+rc.ID))
			case want != "" && want != a.Patch.SHA256:
				viols = append(viols, newViolation(RuleClosure, ln, a.Rel, ErrClosureBadApply,
					fmt.Sprintf("running config %s: its apply attestation names patch sha256 %s, the line applied %s", rc.ID, short(want), short(a.Patch.SHA256))))
			}
		}
		for _, id := range rc.Unknown {
			viols = append(viols, newViolation(RuleClosure, 0, "", ErrClosureUnknown, fmt.Sprintf("running config %s names apply %s", rc.ID, id)))
		}
	}
	sort.SliceStable(viols, func(i, j int) bool {
		if viols[i].Line != viols[j].Line {
			return viols[i].Line < viols[j].Line
		}
		return viols[i].Rule < viols[j].Rule
	})
	if viols == nil {
		viols = []Violation{}
	}
	if res.Findings == nil {
		res.Findings = []Finding{}
	}
	res.Violations = viols
	res.Passed = len(viols) == 0
	return res, nil
}
