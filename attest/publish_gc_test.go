package attest

import (
	"context"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/store"
)

// gcDuringAppend is an Appender that runs a full GC on the store before it
// appends: the moment between "envelope block stored" and "attestation
// indexed" that a concurrent POST /api/v1/gc can hit.
type gcDuringAppend struct {
	t     testing.TB
	st    *store.Store
	inner Appender
}

func (g gcDuringAppend) Append(ctx context.Context, entry []byte) (uint64, error) {
	if _, err := g.st.GC(ctx); err != nil {
		g.t.Errorf("GC during Append: %v", err)
	}
	return g.inner.Append(ctx, entry)
}

// registerAttestationRoots registers the index as a GC root source, as
// internal/node does.
func registerAttestationRoots(st *store.Store, ix *Index) {
	st.RegisterRoots("attestations", func(ctx context.Context) ([]cid.Cid, error) {
		recs, err := ix.Search(Query{})
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

// TestPublishSurvivesGC: a GC that runs after Publish stored the envelope
// block but before the index names it must not collect the block (issue 12:
// acknowledged attestations were lost while GC ran in a loop).
func TestPublishSurvivesGC(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	registerAttestationRoots(n.store, n.pub.Index)
	n.pub.Log = gcDuringAppend{t: t, st: n.store, inner: n.log}
	signer := testKey(t, "")
	for i := range 3 {
		env := sign(t, PayloadType, proposalStatement(t, fmt.Sprintf("patch %d", i)), signer)
		p, err := n.pub.PublishEnvelope(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.store.Blockstore().Get(ctx, p.ID); err != nil {
			t.Fatalf("attestation %d (%s) acknowledged, then lost to GC: %v", i, p.ID, err)
		}
		if _, err := n.store.GC(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := n.store.Blockstore().Get(ctx, p.ID); err != nil {
			t.Fatalf("attestation %d (%s) lost to a GC after Publish returned: %v", i, p.ID, err)
		}
		bb := &BundleBuilder{Blocks: n.store.Blockstore(), Log: n.log, Index: n.pub.Index}
		if _, err := bb.Build(ctx, p.ID, false); err != nil {
			t.Fatalf("bundle %s: %v", p.ID, err)
		}
	}
}

// TestRepublishRestoresLostBlock: republishing an indexed attestation whose
// envelope block is gone (lost to the GC race before the fix) stores it
// again.
func TestRepublishRestoresLostBlock(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	env := sign(t, PayloadType, proposalStatement(t, "lost"), testKey(t, ""))
	b, err := MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	p, err := n.pub.Publish(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.Blockstore().DeleteBlock(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	again, err := n.pub.Publish(ctx, b)
	if err != nil || !again.Existing || again.LogIndex != p.LogIndex {
		t.Fatalf("republish = %+v, %v", again, err)
	}
	if _, err := n.store.Blockstore().Get(ctx, p.ID); err != nil {
		t.Fatalf("republish of %s did not restore its block: %v", p.ID, err)
	}
}
