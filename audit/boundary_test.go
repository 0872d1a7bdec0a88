package audit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckWorkspaceSample(t *testing.T) {
	ws := newWorkspace(t, nil)
	rep, err := CheckWorkspace(ws, &Policy{}, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Result.Passed || !rep.Result.SingleOperator || rep.Lines != 7 || rep.Result.Applies != 1 {
		t.Fatalf("sample under the default policy: %+v", rep.Result)
	}
	if err := rep.Result.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckWorkspaceApprovers(t *testing.T) {
	ws := newWorkspace(t, nil)
	p, err := ParsePolicy([]byte(`{"approvers": {"threshold": 2, "keys": ["k1", "k2", "k3"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	sha := FileLookupMust(t, ws, fooPatch)
	applyTime := time.Date(2026, 11, 25, 16, 58, 35, 967217000, time.UTC)
	tests := []struct {
		name      string
		approvals []Approval
		reason    error
	}{
		{"none", nil, ErrNoApproval},
		{"one of three", []Approval{{ID: "a1", PatchSHA256: sha, Signers: []string{"k1"}}}, ErrNoApproval},
		{"same key twice", []Approval{{ID: "a1", PatchSHA256: sha, Signers: []string{"k1"}}, {ID: "a2", PatchSHA256: sha, Signers: []string{"k1"}}}, ErrNoApproval},
		{"untrusted keys", []Approval{{ID: "a1", PatchSHA256: sha, Signers: []string{"k1", "evil"}}}, ErrNoApproval},
		{"other patch", []Approval{{ID: "a1", PatchSHA256: strings.Repeat("0", 64), Signers: []string{"k1", "k2"}}}, ErrNoApproval},
		{"after the apply", []Approval{{ID: "a1", PatchSHA256: sha, Signers: []string{"k1", "k2"}, Time: applyTime.Add(time.Second)}}, ErrApprovalLate},
		{"two of three", []Approval{{ID: "a1", PatchSHA256: sha, Signers: []string{"k1", "k3"}}}, nil},
		{"two envelopes", []Approval{{ID: "a1", PatchSHA256: sha, Signers: []string{"k2"}, Time: applyTime}, {ID: "a2", PatchSHA256: sha, Signers: []string{"k3"}}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := CheckWorkspace(ws, p, Inputs{Approvals: tc.approvals})
			if err != nil {
				t.Fatal(err)
			}
			r := rep.Result
			if r.SingleOperator {
				t.Fatal("approver policy reported as single-operator")
			}
			if tc.reason == nil {
				if !r.Passed {
					t.Fatalf("violations: %v", r.Err())
				}
				if len(r.ApprovedBy[3]) == 0 {
					t.Fatalf("apply at line 3 not reported as approved: %v", r.ApprovedBy)
				}
				return
			}
			checkOnly(t, r, RuleApproval, 3, tc.reason)
		})
	}
}

// FileLookupMust returns the hex sha256 of a workspace patch.
func FileLookupMust(t *testing.T, ws, rel string) string {
	t.Helper()
	pi, err := FileLookup(ws)(rel)
	if err != nil || !pi.Found {
		t.Fatalf("%s: %v %v", rel, pi, err)
	}
	return pi.SHA256
}

// checkOnly asserts that r failed with exactly one violation of rule at line.
func checkOnly(t *testing.T, r *Result, rule Rule, line int64, reason error) {
	t.Helper()
	if r.Passed || len(r.Violations) != 1 {
		t.Fatalf("want exactly one violation (rule %d line %d), got passed=%v %v", rule, line, r.Passed, r.Err())
	}
	checkHas(t, r, rule, line, reason)
}

func checkHas(t *testing.T, r *Result, rule Rule, line int64, reason error) {
	t.Helper()
	for _, v := range r.Violations {
		if v.Rule == rule && v.Line == line && errors.Is(&v, reason) {
			if !strings.Contains(v.Error(), "rule ") {
				t.Errorf("violation message %q does not name the rule", v.Error())
			}
			return
		}
	}
	t.Fatalf("no violation of rule %d at line %d (%v); got %v", rule, line, reason, r.Err())
}

func TestCheckWorkspaceDerived(t *testing.T) {
	sample := sampleLines(t)
	tests := []struct {
		name   string
		lines  func() []string
		policy string
		rule   Rule
		line   int64
		reason error
		also   []Violation // further expected violations (rule, line, reason)
	}{
		{"apply of a patch no run saved", func() []string {
			return append(clone(sample), applyLine(barPatch[:len(barPatch)-6]+"-other.patch"))
		}, "", RuleProposal, 8, ErrNoProposal, nil},
		{"apply of a patch saved only later", func() []string {
			l := clone(sample)
			return []string{l[0], l[2], l[1]}
		}, "", RuleProposal, 2, ErrNoProposal, nil},
		{"run with source_modified true, proposal applied", func() []string {
			return append(clone(sample), runLine("worktree_run", barPatch, true), applyLine(barPatch))
		}, "", RuleProposal, 9, ErrSourceModified, []Violation{{Rule: RuleSandbox, Line: 8, Reason: ErrAgentFlag}}},
		{"agent run switched the system", func() []string {
			return append(clone(sample), `{"action": "controller_run", "result": "ok", "switched_system": true, "timestamp": "2026-11-25T17:00:00+00:00"}`)
		}, "", RuleSandbox, 8, ErrAgentFlag, nil},
		{"human rebuild may switch", func() []string {
			return append(clone(sample), `{"action": "rebuild", "requires_sudo": true, "result": "ok", "switched_system": true, "timestamp": "2026-11-25T17:00:00+00:00"}`)
		}, "", 0, 0, nil, nil},
		{"extra forbidden flag from policy", func() []string {
			return append(clone(sample), `{"action": "worktree_run", "network": true, "result": "ok", "timestamp": "2026-11-25T17:00:00+00:00"}`)
		}, `{"forbiddenAgentFlags": ["network"]}`, RuleSandbox, 8, ErrAgentFlag, nil},
		{"denied request applied", func() []string {
			l := clone(sample)
			return append(l, strings.Replace(applyLine(barPatch), `"patch"`, `"request": "sudo cat ~/.ssh/id_ed25519", "patch"`, 1))
		}, "", RuleSandbox, 8, ErrDeniedApplied, nil},
		{"apply of a missing patch", func() []string {
			return append(clone(sample), runLine("worktree_run", ".agentix/proposals/gone.patch", false), applyLine(".agentix/proposals/gone.patch"))
		}, "", RuleProposal, 9, ErrPatchMissing, nil},
		{"apply naming a path outside .agentix", func() []string {
			return append(clone(sample), `{"action": "apply", "patch": "/etc/passwd", "result": "applied", "timestamp": "2026-11-25T17:00:00+00:00"}`)
		}, "", RuleProposal, 8, ErrPatchUnnamed, nil},
		{"unparseable line is a finding by default", func() []string {
			return append(clone(sample), `{"action": "apply", "patch": `)
		}, "", 0, 0, nil, nil},
		{"unparseable line denied by policy", func() []string {
			return append(clone(sample), `{"action": "apply", "patch": `)
		}, `{"denyUnparseableLines": true}`, RuleSandbox, 8, ErrUnparseable, nil},
		{"missing proposal denied by policy", func() []string {
			return append(clone(sample), runLine("worktree_run", ".agentix/proposals/gone.patch", false))
		}, `{"denyMissingPatches": true}`, RuleProposal, 8, ErrPatchMissing, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWorkspace(t, tc.lines())
			p := &Policy{}
			if tc.policy != "" {
				var err error
				if p, err = ParsePolicy([]byte(tc.policy)); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := CheckWorkspace(ws, p, Inputs{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.rule == 0 {
				if !rep.Result.Passed {
					t.Fatalf("unexpected violations: %v", rep.Result.Err())
				}
				if strings.Contains(tc.name, "unparseable") && len(rep.Result.Findings) != 1 {
					t.Fatalf("unparseable line not reported: %+v", rep.Result.Findings)
				}
				return
			}
			if len(tc.also) == 0 {
				checkOnly(t, rep.Result, tc.rule, tc.line, tc.reason)
			}
			checkHas(t, rep.Result, tc.rule, tc.line, tc.reason)
			for _, v := range tc.also {
				checkHas(t, rep.Result, v.Rule, v.Line, v.Reason)
			}
		})
	}
}

func clone(s []string) []string { return append([]string(nil), s...) }

func TestRule5(t *testing.T) {
	ws := newWorkspace(t, append(sampleLines(t), applyLine(barPatch[:len(barPatch)-6]+"-x.patch")))
	rep, err := CheckWorkspace(ws, &Policy{}, Inputs{RunningConfigs: []RunningConfig{
		{ID: "rc1", ApplyLines: []int64{3}},
		{ID: "rc2", ApplyLines: []int64{3, 8, 5}, Unknown: []string{"bafyunknown"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Result
	checkHas(t, r, RuleClosure, 8, ErrClosureBadApply)
	checkHas(t, r, RuleClosure, 5, ErrClosureUnknown)
	checkHas(t, r, RuleClosure, 0, ErrClosureUnknown)
	for _, v := range r.Violations {
		if v.Rule == RuleClosure && v.Line == 3 {
			t.Fatalf("good apply at line 3 flagged: %v", &v)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{`{"approvers": {"threshold": 2, "keys": ["a", "b", "c"]}}`, true},
		{`{"approvers": {"threshold": 0, "keys": ["a"]}}`, false},
		{`{"approvers": {"threshold": 4, "keys": ["a", "b", "c"]}}`, false},
		{`{"approvers": {"threshold": 1, "keys": []}}`, false},
		{`{"approvers": {"threshold": 2, "keys": ["a", "a"]}}`, false},
		{`{"allowSudo": true}`, false},
		{`{} {}`, false},
		{`[]`, false},
		// One reading: no duplicate or case-variant members.
		{`{"denyUnparseableLines": true, "denyUnparseableLines": false}`, false},
		{`{"DenyUnparseableLines": true}`, false},
		{`{"approvers": {"threshold": 1, "keys": ["a"], "Threshold": 2}}`, false},
		{`{"forbiddenAgentFlags": ["x"], "forbiddenagentflags": []}`, false},
		{"{\"forbiddenAgentFlags\": [\"\xff\"]}", false},
	}
	for _, tc := range tests {
		_, err := ParsePolicy([]byte(tc.in))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadPolicy)) {
			t.Errorf("ParsePolicy(%s) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	p, err := LoadPolicy(sampleDir + "/policy.json")
	if err != nil || !p.SingleOperator() {
		t.Fatalf("sample policy: %v %v", p, err)
	}
}
