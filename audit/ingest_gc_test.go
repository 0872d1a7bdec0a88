package audit

import (
	"bytes"
	"context"
	"errors"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/store"
)

// gcAttester runs a full GC before each attestation it publishes: in the
// middle of an ingest, after the snapshot, its bytes and the patches are
// stored and before the workspace head and state (the ingest's GC roots)
// are written.
type gcAttester struct {
	t     testing.TB
	st    *store.Store
	inner Attester
	runs  int
}

func (g *gcAttester) Attest(ctx context.Context, pt string, subjects []attest.ResourceDescriptor, pred any) (cid.Cid, error) {
	if _, err := g.st.GC(ctx); err != nil {
		g.t.Errorf("GC during ingest: %v", err)
	}
	g.runs++
	return g.inner.Attest(ctx, pt, subjects, pred)
}

// checkIngestReachable runs GC and then checks that everything the ingest
// acknowledged reads back: the snapshot's bytes are the file's, and every
// root the ingester reports (snapshots, patches, evidence) has its whole DAG.
func checkIngestReachable(t *testing.T, n *testNode, r *IngestResult, want []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.st.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.st.Blockstore().Get(ctx, r.Snapshot); err != nil {
		t.Fatalf("snapshot %s of an acknowledged ingest: %v", r.Snapshot, err)
	}
	if got := catAll(t, n.st, r); !bytes.Equal(got, want) {
		t.Fatalf("snapshot bytes %s: %d bytes, want the file's %d", r.Bytes, len(got), len(want))
	}
	roots, err := n.ing.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range roots {
		if err := n.st.Walk(ctx, c, func(blocks.Block) error { return nil }); err != nil {
			t.Fatalf("ingest root %s: %v", c, err)
		}
	}
	for _, id := range r.Attestations {
		if _, err := n.st.Blockstore().Get(ctx, id); err != nil {
			t.Fatalf("attestation %s of an acknowledged ingest: %v", id, err)
		}
	}
}

// TestIngestSurvivesGC: a GC that runs while an ingest is between storing
// its blocks and writing its head must not collect them (issue 12). Covers
// the first ingest, a grown file and a refused (tampered) version.
func TestIngestSurvivesGC(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, true)
	registerAttestationRoots(n)
	ga := &gcAttester{t: t, st: n.st, inner: n.ing.Attester}
	n.ing.Attester = ga
	lines := sampleLines(t)
	half := len(lines) / 2
	ws := newWorkspace(t, lines[:half])

	r1, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	checkIngestReachable(t, n, r1, readLog(t, ws))

	agentixtest.WriteLog(t, ws, lines)
	r2, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	checkIngestReachable(t, n, r2, readLog(t, ws))

	agentixtest.WriteLog(t, ws, lines[1:]) // the first line removed
	r3, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
	var te *TamperError
	if !errors.As(err, &te) {
		t.Fatalf("ingest of a tampered log: %v, want a *TamperError", err)
	}
	checkIngestReachable(t, n, r3, readLog(t, ws))
	if ga.runs == 0 {
		t.Fatal("no GC ran during the ingests")
	}
}

// registerAttestationRoots makes the node's attestation index a GC root
// source, as internal/node does.
func registerAttestationRoots(n *testNode) {
	n.st.RegisterRoots("attestations", func(ctx context.Context) ([]cid.Cid, error) {
		recs, err := n.pub.Index.Search(attest.Query{})
		if err != nil {
			return nil, err
		}
		out := make([]cid.Cid, 0, len(recs))
		for _, r := range recs {
			c, err := cid.Decode(r.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	})
}
