package attest

import "github.com/agentix/agentix-store/schemas"

// Predicate types (see package schemas, which holds their JSON Schemas).
const (
	PredicateTypePrefix    = schemas.PredicateTypePrefix
	PredicateAuditLog      = schemas.PredicateAuditLog
	PredicateProposal      = schemas.PredicateProposal
	PredicateApproval      = schemas.PredicateApproval
	PredicateApply         = schemas.PredicateApply
	PredicateRunningConfig = schemas.PredicateRunningConfig
)

// ValidatePredicate checks predicate JSON against its type's schema; see
// schemas.ValidatePredicate.
func ValidatePredicate(predicateType string, predicateJSON []byte) error {
	return schemas.ValidatePredicate(predicateType, predicateJSON)
}

// PatchRef names a stored proposal patch: the Patch record's CID, the hex
// SHA-256 of the patch bytes and, optionally, its path in the workspace.
type PatchRef struct {
	CID    string `json:"cid"`
	SHA256 string `json:"sha256"`
	Path   string `json:"path,omitempty"`
}

// AuditLine names line Line (0-based; leaf Line of the snapshot's tree) of the
// audit log snapshot whose AuditLogSnapshot record has CID Snapshot.
type AuditLine struct {
	Snapshot string `json:"snapshot"`
	Line     int64  `json:"line"`
}

// AuditLogPredicate (audit-log/v1): the audit log of Workspace at Snapshot.Size
// lines has RFC 6962 root Snapshot.Root; Boundary is the safety-boundary check
// over it.
type AuditLogPredicate struct {
	Workspace string           `json:"workspace"`
	Snapshot  AuditLogSnapshot `json:"snapshot"`
	Boundary  BoundaryResult   `json:"boundary"`
	Time      string           `json:"time,omitempty"`
}

// AuditLogSnapshot names an AuditLogSnapshot record, its size and root.
type AuditLogSnapshot struct {
	CID  string `json:"cid"`
	Size int64  `json:"size"`
	Root string `json:"root"` // hex
}

// BoundaryResult is the outcome of the safety-boundary check.
type BoundaryResult struct {
	Policy         string      `json:"policy,omitempty"` // hex SHA-256 of the policy file
	Passed         bool        `json:"passed"`
	SingleOperator bool        `json:"singleOperator,omitempty"`
	Violations     []Violation `json:"violations"`
}

// Violation is one broken boundary rule, naming the audit line.
type Violation struct {
	Line    int64  `json:"line"`
	Rule    string `json:"rule"`
	Message string `json:"message,omitempty"`
}

// ProposalPredicate (proposal/v1): Patch was produced by the sandboxed run
// at AuditLine, which did not modify the source.
type ProposalPredicate struct {
	Workspace      string    `json:"workspace"`
	Patch          PatchRef  `json:"patch"`
	AuditLine      AuditLine `json:"auditLine"`
	Action         string    `json:"action"` // controller_run or worktree_run
	Mode           string    `json:"mode,omitempty"`
	Goal           string    `json:"goal,omitempty"`
	SourceModified bool      `json:"sourceModified"` // always false
}

// ApprovalPredicate (approval/v1): the envelope's signers approve Patch.
// It carries nothing signer-specific, so every approver signs the same bytes.
type ApprovalPredicate struct {
	Patch    PatchRef `json:"patch"`
	Proposal string   `json:"proposal,omitempty"` // proposal/v1 attestation id
	Comment  string   `json:"comment,omitempty"`
}

// ApplyPredicate (apply/v1): the node applied Patch under Approval (an
// approval/v1 attestation id), or as the single operator, at AuditLine.
type ApplyPredicate struct {
	Workspace      string    `json:"workspace"`
	Patch          PatchRef  `json:"patch"`
	Approval       string    `json:"approval,omitempty"`
	SingleOperator bool      `json:"singleOperator,omitempty"`
	AuditLine      AuditLine `json:"auditLine"`
}

// RunningConfigPredicate (running-config/v1): the node runs Closure, built
// from ConfigCommit after Applies (apply/v1 attestation ids, oldest first).
type RunningConfigPredicate struct {
	Closure      ClosureRef `json:"closure"`
	ConfigCommit string     `json:"configCommit,omitempty"`
	Applies      []string   `json:"applies"`
	Generation   int64      `json:"generation,omitempty"`
	Time         string     `json:"time,omitempty"`
}

// ClosureRef names a stored Closure record and its root store path.
type ClosureRef struct {
	CID           string `json:"cid"`
	RootStorePath string `json:"rootStorePath"`
	NarHash       string `json:"narHash"`
}
