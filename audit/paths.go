package audit

import (
	"path"
	"strings"
)

// AgentixDir is the directory inside a workspace where Agentix keeps its
// audit log and proposals.
const AgentixDir = ".agentix"

// Workspace-relative locations Agentix writes.
const (
	AuditLogPath = AgentixDir + "/audit.jsonl"
	ProposalsDir = AgentixDir + "/proposals"
)

// ResolvePath maps a path written in the audit log (an absolute path of the
// workspace where Agentix ran, such as
// /home/operator/nixos-config/.agentix/proposals/x.patch) to a path relative
// to the workspace root: the part from the last ".agentix/" component on.
// The workspace may have moved or been copied since, so the prefix is
// ignored. A path that is already relative and starts with .agentix/ is
// returned cleaned. ok is false when p has no .agentix component, or when
// the result would leave .agentix/ (".." components): such a path does not
// name a proposal of this workspace.
func ResolvePath(p string) (rel string, ok bool) {
	if p == "" {
		return "", false
	}
	p = strings.ReplaceAll(p, "\\", "/")
	i := strings.LastIndex("/"+p, "/"+AgentixDir+"/")
	if i < 0 {
		return "", false
	}
	rel = path.Clean(p[i:])
	if !strings.HasPrefix(rel, AgentixDir+"/") {
		return "", false
	}
	return rel, true
}

// outsidePath reports whether p, taken as ResolvePath takes it, leads out
// of the workspace (its ".." components climb above the workspace root),
// and returns the resolved workspace-relative path.
func outsidePath(p string) (string, bool) {
	p = strings.ReplaceAll(p, "\\", "/")
	i := strings.LastIndex("/"+p, "/"+AgentixDir+"/")
	if i < 0 {
		return "", false
	}
	rel := path.Clean(p[i:])
	return rel, rel == ".." || strings.HasPrefix(rel, "../")
}
