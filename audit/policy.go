package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentix/agentix-store/attest"
)

// Policy is the safety-boundary policy. The zero value is the built-in
// policy, which follows Agentix's own contract: single-operator mode (no
// approvers; the human apply line stands as the approval), the agent flags
// source_modified, switched_system and requires_sudo forbidden on agent-run
// events, and unparseable lines and missing patches reported as findings.
//
// A policy file can only tighten the built-in policy: every field adds a
// requirement, none removes one. As JSON (the "boundary" object of a trust
// policy, or a file of its own; read strictly: unknown, duplicate and
// case-variant keys are rejected so that a typo never silently weakens the
// check):
//
//	{
//	  "approvers": {"threshold": 2, "keys": ["<key id>", "<key id>", "<key id>"]},
//	  "forbiddenAgentFlags": ["network_access"],
//	  "denyUnparseableLines": true,
//	  "denyMissingPatches": true
//	}
type Policy struct {
	// Approvers, when Keys is non-empty, requires every applied patch to
	// carry approvals by at least Threshold distinct keys of Keys (key ids
	// as in attest.KeyID), recorded no later than the apply (rule 2).
	Approvers Approvers `json:"approvers,omitzero"`
	// ForbiddenAgentFlags adds keys that must never be true on an agent-run
	// event (rule 3), beyond the built-in three.
	ForbiddenAgentFlags []string `json:"forbiddenAgentFlags,omitempty"`
	// DenyUnparseableLines makes every unparseable line a rule 3
	// violation: what cannot be read cannot be shown to respect the
	// boundary.
	DenyUnparseableLines bool `json:"denyUnparseableLines,omitempty"`
	// DenyMissingPatches makes a proposal whose patch file is not found a
	// rule 1 violation even when it is never applied.
	DenyMissingPatches bool `json:"denyMissingPatches,omitempty"`

	digest string
}

// Approvers is an m-of-n approver requirement.
type Approvers struct {
	Threshold int      `json:"threshold"`
	Keys      []string `json:"keys"`
}

// BuiltinForbiddenAgentFlags are the keys no agent-run event may have true.
var BuiltinForbiddenAgentFlags = []string{"source_modified", "switched_system", "requires_sudo"}

// HumanActions are the actions a human performs (Agentix's review, apply
// and rebuild steps); every other action is agent-run for rule 3.
var HumanActions = []string{"apply", "rebuild", "review", "approve"}

// SingleOperator reports whether the policy names no approvers.
func (p *Policy) SingleOperator() bool { return len(p.Approvers.Keys) == 0 }

// Digest is the hex SHA-256 of the policy file the policy was parsed from,
// or of the canonical JSON of the built-in policy.
func (p *Policy) Digest() string {
	if p.digest == "" {
		b, err := json.Marshal(p)
		if err != nil {
			// A Policy holds only strings, booleans and slices of them.
			panic(fmt.Sprintf("audit: encode policy: %v", err))
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	return p.digest
}

func (p *Policy) forbiddenFlags() []string {
	return append(slices.Clone(BuiltinForbiddenAgentFlags), p.ForbiddenAgentFlags...)
}

// ParsePolicy decodes a boundary policy. Failures match ErrBadPolicy and
// name the offending field.
func ParsePolicy(b []byte) (*Policy, error) {
	// One strict reading: exact-case member names, no duplicates, no
	// unknown members, valid UTF-8, nothing after the object.
	var p Policy
	if err := jsonv2.Unmarshal(b, &p, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	a := p.Approvers
	switch {
	case len(a.Keys) == 0 && a.Threshold != 0:
		return nil, fmt.Errorf("%w: approvers.threshold %d with no approver keys", ErrBadPolicy, a.Threshold)
	case len(a.Keys) > 0 && (a.Threshold < 1 || a.Threshold > len(a.Keys)):
		return nil, fmt.Errorf("%w: approvers.threshold %d must be between 1 and %d (the number of keys)", ErrBadPolicy, a.Threshold, len(a.Keys))
	}
	seen := map[string]bool{}
	for i, k := range a.Keys {
		if k == "" || seen[k] {
			return nil, fmt.Errorf("%w: approvers.keys[%d] is empty or repeated", ErrBadPolicy, i)
		}
		seen[k] = true
	}
	for i, f := range p.ForbiddenAgentFlags {
		if f == "" {
			return nil, fmt.Errorf("%w: forbiddenAgentFlags[%d] is empty", ErrBadPolicy, i)
		}
	}
	s := sha256.Sum256(b)
	p.digest = hex.EncodeToString(s[:])
	return &p, nil
}

// LoadPolicy reads and parses a policy file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("boundary policy: %w", err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// WithTrustPolicy returns the boundary policy in force when an auditor or
// node holds trust policy tp: base (nil: the built-in policy, or tp's
// "boundary" object when it has one), tightened by tp's approvers: when
// base names no approvers and tp names approver keys, every applied patch
// needs approvals by tp's threshold of those keys (key ids as attest.KeyID
// computes them). The result's Digest covers the merged policy.
func WithTrustPolicy(base *Policy, tp *attest.Policy) (*Policy, error) {
	var p Policy
	switch {
	case base != nil:
		p = *base
	case len(tp.Boundary) > 0 && string(tp.Boundary) != "null":
		bp, err := ParsePolicy(tp.Boundary)
		if err != nil {
			return nil, fmt.Errorf("trust policy boundary: %w", err)
		}
		p = *bp
	}
	if p.SingleOperator() && tp.Approvers.Threshold > 0 {
		ks := tp.ApproverKeySet()
		keys := make([]string, 0, ks.Len())
		for _, v := range ks.List() {
			keys = append(keys, v.KeyID())
		}
		if len(keys) > 0 {
			p.Approvers = Approvers{Threshold: min(tp.Approvers.Threshold, len(keys)), Keys: keys}
			p.digest = ""
		}
	}
	return &p, nil
}
