package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/internal/nixostest"
	"github.com/agentix/agentix-store/internal/node"
)

const (
	host         = "alpha"
	fooWorktree  = "20261125-165835-worktree-create-module-foo-with-template-packages.patch"
	barWorktree  = "20261125-165837-worktree-create-module-bar-with-template-packages.patch"
	proposalsRel = ".agentix/proposals/"
)

// ladder is a node whose operator's nixos-config (a git-repo flake) goes
// through the Agentix ladder, with the real ingester, real Nix and the real
// daemon in front of the node.
type ladder struct {
	t     *testing.T
	tn    *testNode
	ws    string
	lines []string
	state *State
}

func newLadder(t *testing.T) *ladder {
	t.Helper()
	nixostest.Need(t)
	l := &ladder{t: t, tn: openNode(t, initNodeDir(t, host)), ws: nixostest.NewWorkspace(t, host)}
	if err := os.MkdirAll(filepath.Join(l.ws, proposalsRel), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l.state = st
	return l
}

// propose plays a sandboxed controller run that saves the proposal patch
// name into the workspace, as Agentix does.
func (l *ladder) propose(name string) {
	l.t.Helper()
	if err := os.WriteFile(filepath.Join(l.ws, proposalsRel, name), nixostest.Patch(l.t, name), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.lines = append(l.lines, `{"action": "controller_run", "error": null, "execute": true, "goal": "g", "mode": "execute", "passed": true, "path": "`+agentixtest.OrigRoot[:len(agentixtest.OrigRoot)-1]+`", "proposal_saved": "`+agentixtest.OrigRoot+proposalsRel+name+`", "result": "ok", "source_modified": false, "timestamp": "2026-11-25T16:58:35.430106+00:00"}`)
}

// apply plays the human apply step: `git apply --index` of the saved
// patch, and its audit line.
func (l *ladder) apply(name string) {
	l.t.Helper()
	nixostest.ApplyIndex(l.t, l.ws, filepath.Join(l.ws, proposalsRel, name))
	l.lines = append(l.lines, agentixtest.ApplyLine(proposalsRel+name))
}

// ingest ingests the workspace's audit log as it now is.
func (l *ladder) ingest() {
	l.t.Helper()
	agentixtest.WriteLog(l.t, l.ws, l.lines)
	pol, err := audit.WithTrustPolicy(nil, l.tn.policy)
	if err != nil {
		l.t.Fatal(err)
	}
	ing := audit.NewIngester(l.tn.n.Store, l.tn.n.DB)
	ing.Policy = pol
	ing.Attester = audit.PublisherAttester{Publisher: l.tn.pub, Signer: l.tn.signer}
	if _, err := ing.Ingest(context.Background(), l.ws, audit.IngestOptions{}); err != nil {
		l.t.Fatal(err)
	}
}

// rebuild builds the toplevel with real Nix and imports its closure.
func (l *ladder) rebuild() cid.Cid {
	l.t.Helper()
	out := nixostest.Build(l.t, l.ws, chain.DefaultAttr(host))
	res, err := closure.Import(context.Background(), l.tn.n.Store, l.tn.n.DB, &closure.LocalNix{}, out, closure.ImportOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	return res.Closure
}

// attest publishes the node's running-config/v2 of closure c.
func (l *ladder) attest(c cid.Cid) *node.AttestResult {
	l.t.Helper()
	res, err := l.tn.n.AttestRunning(context.Background(), c, l.tn.signer, node.AttestOptions{Workspace: l.ws, Host: host})
	if err != nil {
		l.t.Fatal(err)
	}
	return res
}

// audit runs the auditor against the node.
func (l *ladder) audit() *Report {
	l.t.Helper()
	return CheckNode(context.Background(), l.tn.srv.URL, l.tn.policy, NodeOptions{State: l.state, TempDir: l.t.TempDir()})
}

func wantProven(t *testing.T, r *Report, substr string) {
	t.Helper()
	if !r.OK {
		t.Fatalf("not proven: failures %+v uncertain %+v", r.Failures, r.Uncertain)
	}
	for _, p := range r.Proven {
		if strings.Contains(p, substr) {
			return
		}
	}
	t.Fatalf("no proven claim contains %q: %q", substr, r.Proven)
}

// TestConfigurationChainLadder walks the ladder twice: genesis → a
// controller run saves foo → apply → rebuild → attest → the auditor says
// PROVEN; then the same for bar, where the re-audit replays only the new
// link.
func TestConfigurationChainLadder(t *testing.T) {
	l := newLadder(t)
	genesisTop := nixostest.Build(t, l.ws, chain.DefaultAttr(host))
	if _, err := l.tn.n.RecordGenesis(context.Background(), l.ws); err != nil {
		t.Fatal(err)
	}

	l.propose(fooWorktree)
	l.apply(fooWorktree)
	l.ingest()
	c1 := l.rebuild()
	rc1 := l.attest(c1)
	if rc1.Link == nil || rc1.Link.Extends.Genesis == nil || len(rc1.Link.Applies) != 1 || len(rc1.Warnings) != 0 {
		t.Fatalf("first link %+v, warnings %v: want one apply over the genesis, no drift", rc1.Link, rc1.Warnings)
	}
	if rc1.Link.Toplevel.OutPath == genesisTop {
		t.Fatalf("the foo module did not change the toplevel (%s)", genesisTop)
	}
	wantProven(t, l.audit(), "configuration of "+l.ws+" proven")

	l.propose(barWorktree)
	l.apply(barWorktree)
	l.ingest()
	c2 := l.rebuild()
	rc2 := l.attest(c2)
	if rc2.Link == nil || rc2.Link.Extends.RunningConfig != rc1.ID.String() || len(rc2.Link.Applies) != 1 {
		t.Fatalf("second link %+v: want one apply extending %s", rc2.Link, rc1.ID)
	}
	r := l.audit()
	wantProven(t, r, "configuration of "+l.ws+" proven: the running closure is the evaluation of the genesis plus 1 link(s)")

	// A fresh auditor replays the whole chain from the genesis.
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l.state = st
	r = l.audit()
	for _, p := range r.Proven {
		t.Log(p)
	}
	wantProven(t, r, "plus 2 link(s)")
}
