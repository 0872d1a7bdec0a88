package audit

import (
	"context"
	"sync"
	"testing"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/agentixtest"
)

// TestConcurrentIngestsOfOneWorkspace runs several ingests of one
// workspace at once, as the daemon's follower and a CLI ingest through the
// API can: each line is ingested and attested once, and the head is the
// whole log.
func TestConcurrentIngestsOfOneWorkspace(t *testing.T) {
	n := newNode(t, true)
	ws := agentixtest.Workspace(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.ing.Ingest(ctx, ws, IngestOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := n.ing.Ingest(ctx, ws, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Lines != int64(len(agentixtest.SampleLines(t))) {
		t.Fatalf("after the concurrent ingests: unchanged %v, %d lines; want unchanged at %d", res.Unchanged, res.Lines, len(agentixtest.SampleLines(t)))
	}
	if got := n.pub.Log.(interface{ Size() uint64 }).Size(); got != 4 {
		t.Errorf("log holds %d entries, want 4 (one per attestation): a concurrent ingest logged one twice", got)
	}
	for _, pt := range []string{attest.PredicateAuditLog, attest.PredicateProposal, attest.PredicateApply} {
		recs, err := n.pub.Index.Search(attest.Query{PredicateType: pt})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{attest.PredicateAuditLog: 1, attest.PredicateProposal: 2, attest.PredicateApply: 1}[pt]
		if len(recs) != want {
			t.Errorf("%d %s attestations, want %d: each line attested once", len(recs), pt, want)
		}
	}
}
