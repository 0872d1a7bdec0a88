package attest

import "github.com/agentix/agentix-store/schemas"

// PredicateRunningConfigV2 is running-config/v2: running-config/v1 plus the
// configuration chain.
const PredicateRunningConfigV2 = schemas.PredicateRunningConfigV2

// RunningConfigV2Predicate (running-config/v2): the node runs Closure, the
// evaluation of Configuration's source, which is the source it extends
// with the patches of its applies applied in order. Exactly one of
// Configuration and Unproven is set: a node that cannot compute its
// configuration (no workspace, not a flake) still attests what it runs,
// and says why the configuration is unproven.
type RunningConfigV2Predicate struct {
	Closure       ClosureRef         `json:"closure"`
	Configuration *ConfigurationLink `json:"configuration,omitempty"`
	Unproven      string             `json:"unproven,omitempty"`
	Generation    int64              `json:"generation,omitempty"`
	Time          string             `json:"time,omitempty"`
}

// ConfigurationLink is one link of a node's configuration chain S0 → S1 → …
type ConfigurationLink struct {
	// Workspace is the Agentix workspace (a git-repo flake) the source is.
	Workspace string `json:"workspace"`
	// Source is the state S(k) the toplevel was evaluated from.
	Source SourceRef `json:"source"`
	// Extends is S(k-1): the previous running-config/v2, or the genesis.
	Extends ExtendsRef `json:"extends"`
	// Applies are the apply/v1 attestation ids since Extends, in the order
	// their patches were applied.
	Applies []string `json:"applies"`
	// Toplevel is the evaluated flake attribute whose outPath is the
	// closure's root.
	Toplevel ToplevelRef `json:"toplevel"`
	// Drift lists the files in which the node found Source to differ from
	// Extends plus the applies' patches: the node's own warning, which the
	// auditor recomputes.
	Drift []string `json:"drift,omitempty"`
}

// SourceRef names a configuration source state.
type SourceRef struct {
	// NarHash is the SRI SHA-256 NAR hash of the source tree, exactly as
	// Nix computes the flake's locked.narHash.
	NarHash string `json:"narHash"`
	// Rev is the git revision, when the source is a clean commit.
	Rev string `json:"rev,omitempty"`
	// NAR is the CID of the source tree's NAR, stored as a UnixFS file, so
	// that an auditor can fetch it.
	NAR string `json:"nar"`
}

// ExtendsRef is what a link extends: exactly one of RunningConfig (with
// RollbackTo when the node returned to an earlier state) and Genesis.
type ExtendsRef struct {
	RunningConfig string     `json:"runningConfig,omitempty"`
	Genesis       *SourceRef `json:"genesis,omitempty"`
	RollbackTo    string     `json:"rollbackTo,omitempty"`
}

// ToplevelRef is an evaluated flake attribute.
type ToplevelRef struct {
	Attr    string `json:"attr"`
	DrvPath string `json:"drvPath"`
	OutPath string `json:"outPath"`
}
