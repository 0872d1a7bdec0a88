package verify

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
)

const (
	cacheDir = "../closure/testdata/cache"
	libPath  = "/nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib"
	wsName   = "operator/nixos-config"
	fooPatch = ".agentix/proposals/20261125-165835-worktree-create-module-foo-with-template-packages.patch"
)

// The sample workspace, shared with audit's tests.
var (
	sampleLines = agentixtest.SampleLines
	workspace   = agentixtest.Workspace
	joinLines   = agentixtest.JoinLines
	applyLine   = agentixtest.ApplyLine
)

// ingest ingests ws into the node as the real ingester does, with the
// boundary policy of the node's trust policy, attesting through the node's
// Publisher.
func (tn *testNode) ingest(t testing.TB, ws string) *audit.IngestResult {
	t.Helper()
	pol, err := audit.WithTrustPolicy(nil, tn.policy)
	if err != nil {
		t.Fatal(err)
	}
	ing := audit.NewIngester(tn.n.Store, tn.n.DB)
	ing.Policy = pol
	ing.Attester = audit.PublisherAttester{Publisher: tn.pub, Signer: tn.signer}
	res, err := ing.Ingest(context.Background(), ws, audit.IngestOptions{Workspace: wsName})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// importLib imports the one-path closure of the committed file:// binary
// cache into the node.
func (tn *testNode) importLib(t testing.TB) cid.Cid {
	t.Helper()
	ctx := context.Background()
	abs, err := filepath.Abs(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := closure.NewBinaryCache(ctx, "file://"+abs, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := closure.Import(ctx, tn.n.Store, tn.n.DB, cache, libPath, closure.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Closure
}

// runningConfig publishes the node's running-config/v1 attestation of the
// stored closure c after applies.
func (tn *testNode) runningConfig(t testing.TB, c cid.Cid, applies []string) attest.Published {
	t.Helper()
	env, err := closure.RunningConfig(context.Background(), tn.n.Store, c, closure.RunningConfigOptions{Applies: applies}, tn.signer)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tn.pub.Publish(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publishPredicate signs and publishes an attestation with the node's key
// (what a misbehaving node can always do).
func (tn *testNode) publishPredicate(t testing.TB, pt string, subjects []attest.ResourceDescriptor, pred any) attest.Published {
	t.Helper()
	p, err := tn.pub.Attest(context.Background(), tn.signer, pt, subjects, pred)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// applyIDs lists the apply/v1 attestations the node published.
func (tn *testNode) applyIDs(t testing.TB) []string {
	t.Helper()
	recs, err := tn.n.Attest.Search(attest.Query{PredicateType: attest.PredicateApply})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

// healthyNode is a node that ingested the sample workspace (snapshot,
// proposals, the apply) and runs the imported closure after that apply.
func healthyNode(t testing.TB) (*testNode, cid.Cid) { return nodeWith(t, nil, nil) }

// nodeWith is healthyNode over the audit lines given (nil: the sample's),
// calling hook on the node before its daemon is built.
func nodeWith(t testing.TB, lines []string, hook func(*node.Node)) (*testNode, cid.Cid) {
	t.Helper()
	tn := openNodeWith(t, initNodeDir(t, "alpha"), hook)
	tn.ingest(t, workspace(t, lines))
	c := tn.importLib(t)
	ids := tn.applyIDs(t)
	if len(ids) != 1 {
		t.Fatalf("sample ingest published %d applies, want 1", len(ids))
	}
	tn.runningConfig(t, c, ids)
	return tn, c
}

// fakeSnapshot stores raw as the audit log of wsName in a new
// AuditLogSnapshot record and publishes an audit-log/v1 attestation of it
// claiming lines and root (nil: those of raw) with a passing verdict: a
// node lying about, or rewriting, its audit log.
func (tn *testNode) fakeSnapshot(t testing.TB, raw []byte, lines int64, root []byte) attest.Published {
	t.Helper()
	ctx := context.Background()
	ls, _ := splitLines(raw)
	tr := audit.NewTree()
	for _, l := range ls {
		tr.Append(l)
	}
	if root == nil {
		root, lines = tr.Root(), int64(len(ls))
	}
	bc, err := tn.n.Store.Add(ctx, bytes.NewReader(raw), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := &schemas.AuditLogSnapshot{Workspace: wsName, Bytes: bc, Size: int64(len(raw)), Lines: lines, Root: root}
	blk, err := schemas.EncodeBlock(snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.n.Store.Blockstore().Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	s1 := attest.Subject(blk.Cid(), sha256sum(blk.RawData()), "AuditLogSnapshot")
	s2 := attest.Subject(bc, sha256sum(raw), audit.AuditLogPath)
	return tn.publishPredicate(t, attest.PredicateAuditLog, []attest.ResourceDescriptor{s1, s2}, attest.AuditLogPredicate{
		Workspace: wsName,
		Snapshot:  attest.AuditLogSnapshot{CID: blk.Cid().String(), Size: lines, Root: hexs(root)},
		Boundary:  attest.BoundaryResult{Passed: true, SingleOperator: true, Violations: []attest.Violation{}},
	})
}

func hexs(b []byte) string { return hex.EncodeToString(b) }
