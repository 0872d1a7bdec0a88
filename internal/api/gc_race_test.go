package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
)

// TestAcknowledgedWritesSurviveGCLoop is issue 12: attestations published
// (POST /api/v1/attestations), files added (POST /api/v1/add), workspaces
// ingested and closures imported (in process, on the same node) while
// POST /api/v1/gc runs in a loop. Every write that was acknowledged must
// read back afterwards, and every attestation must bundle and verify.
func TestAcknowledgedWritesSurviveGCLoop(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{MaxAdd: 8 << 20, MaxCAR: 8 << 20}))
	defer srv.Close()
	cl := &Client{Base: srv.URL, Token: tok}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	signer, err := attest.LoadSigner(filepath.Join(n.Dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}

	const (
		publishers   = 3
		perPublisher = 40
		adders       = 2
		perAdder     = 15
		ingests      = 6
	)

	var (
		mu        sync.Mutex
		published []PublishResult
		added     = map[string][]byte{}
		ingested  []*audit.IngestResult
		imported  []*closure.ImportResult
	)

	stop := make(chan struct{})
	var gcWG sync.WaitGroup
	var gcRuns atomic.Int64
	gcWG.Add(1)
	go func() {
		defer gcWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cl.GC(ctx); err != nil {
				t.Errorf("POST /api/v1/gc: %v", err)
				return
			}
			gcRuns.Add(1)
		}
	}()

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				env := raceEnvelope(t, signer, fmt.Sprintf("publisher %d attestation %d", p, i))
				res, err := cl.Publish(ctx, env)
				if err != nil {
					t.Errorf("publish %d/%d: %v", p, i, err)
					return
				}
				mu.Lock()
				published = append(published, res)
				mu.Unlock()
			}
		}()
	}
	for a := range adders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perAdder {
				data := bytes.Repeat([]byte(fmt.Sprintf("adder %d file %d\n", a, i)), 1+i*3000)
				res, err := cl.Add(ctx, bytes.NewReader(data), store.AddOptions{Pin: true, Chunker: "size-16384"})
				if err != nil {
					t.Errorf("add %d/%d: %v", a, i, err)
					return
				}
				mu.Lock()
				added[res.CID] = data
				mu.Unlock()
			}
		}()
	}
	// One workspace ingested as its log grows, attested through the
	// node's publisher.
	ing := audit.NewIngester(n.Store, n.DB)
	ing.Attester = audit.PublisherAttester{Publisher: n.Publisher(), Signer: signer}
	lines := agentixtest.SampleLines(t)
	ws := agentixtest.Workspace(t, lines[:1])
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range ingests {
			k := 1 + (len(lines)-1)*(i+1)/ingests
			agentixtest.WriteLog(t, ws, lines[:k])
			res, err := ing.Ingest(ctx, ws, audit.IngestOptions{Workspace: "race"})
			if err != nil {
				t.Errorf("ingest %d (%d lines): %v", i, k, err)
				return
			}
			mu.Lock()
			ingested = append(ingested, res)
			mu.Unlock()
		}
	}()

	// Closure imports need real Nix: run where it is installed (and always
	// in CI, where its absence fails the test).
	if _, err := exec.LookPath("nix-store"); err == nil || os.Getenv("CI") != "" {
		t.Run("closure imports", func(t *testing.T) {
			nx := nixtest.Require(t)
			paths := nx.Build(
				nixtest.Drv{Name: "gcracelib", Script: "/bin/mkdir -p $out; /usr/bin/seq 1 30000 > $out/numbers"},
				nixtest.Drv{Name: "gcracetop", Script: "/bin/mkdir -p $out; echo ${gcracelib} > $out/refs"},
			)
			for i := range 3 {
				res, err := closure.Import(ctx, n.Store, n.DB, &closure.LocalNix{}, paths[len(paths)-1], closure.ImportOptions{})
				if err != nil {
					t.Fatalf("closure import %d: %v", i, err)
				}
				mu.Lock()
				imported = append(imported, res)
				mu.Unlock()
			}
		})
	} else {
		t.Log("nix-store not installed: closure imports not exercised (CI runs them)")
	}
	wg.Wait()
	close(stop)
	gcWG.Wait()
	if gcRuns.Load() < 2 {
		t.Fatalf("only %d GCs ran during the writes", gcRuns.Load())
	}
	t.Logf("%d GCs, %d attestations, %d adds, %d ingests, %d closure imports",
		gcRuns.Load(), len(published), len(added), len(ingested), len(imported))
	// One more GC after everything was acknowledged.
	if _, err := cl.GC(ctx); err != nil {
		t.Fatal(err)
	}

	pb, err := node.OwnTrustPolicy(n.Dir, n.Config)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := attest.ParsePolicy(pb)
	if err != nil {
		t.Fatal(err)
	}
	bb := &attest.BundleBuilder{Blocks: n.Store.Blockstore(), Index: n.Attest, Log: n.Log}
	var lost int
	checkAttestation := func(what, ids string) {
		t.Helper()
		id, err := cid.Decode(ids)
		if err != nil {
			t.Fatalf("%s: id %q: %v", what, ids, err)
		}
		if _, err := cl.GetBlock(ctx, id); err != nil {
			lost++
			t.Errorf("%s %s acknowledged, then lost: GET block: %v", what, id, err)
			return
		}
		bu, err := bb.Build(ctx, id, false)
		if err != nil {
			t.Errorf("%s %s: bundle: %v", what, id, err)
			return
		}
		b, err := bu.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attest.VerifyBundle(b, pol); err != nil {
			t.Errorf("%s %s: bundle does not verify: %v", what, id, err)
		}
	}
	for _, p := range published {
		checkAttestation("attestation", p.ID)
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged attestations lost", lost, len(published))
	}
	for c, want := range added {
		id, _ := cid.Decode(c)
		rc, err := cl.CatRange(ctx, id, 0, -1)
		if err != nil {
			t.Errorf("added file %s acknowledged, then lost: %v", c, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("added file %s reads back %d bytes (%v), want %d", c, len(got), err, len(want))
		}
	}
	for i, r := range ingested {
		f, err := n.Store.Cat(ctx, r.Bytes)
		if err != nil {
			t.Errorf("ingest %d: snapshot %s bytes %s lost: %v", i, r.Snapshot, r.Bytes, err)
			continue
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || int64(len(got)) != r.Size {
			t.Errorf("ingest %d: snapshot bytes %s read %d bytes (%v), want %d", i, r.Bytes, len(got), err, r.Size)
		}
		if _, err := n.Store.Blockstore().Get(ctx, r.Snapshot); err != nil {
			t.Errorf("ingest %d: snapshot %s lost: %v", i, r.Snapshot, err)
		}
		for _, a := range r.Attestations {
			checkAttestation(fmt.Sprintf("ingest %d attestation", i), a.String())
		}
	}
	roots, err := ing.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range roots {
		if err := n.Store.Walk(ctx, c, func(blocks.Block) error { return nil }); err != nil {
			t.Errorf("ingest root %s: %v", c, err)
		}
	}
	for i, r := range imported {
		if _, err := closure.Verify(ctx, n.Store, r.Closure); err != nil {
			t.Errorf("closure import %d (%s): %v", i, r.Closure, err)
		}
	}
}

// raceEnvelope is a signed proposal/v1 envelope over body's raw CID.
func raceEnvelope(t testing.TB, s *attest.Signer, body string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	m, _ := mh.Encode(sum[:], mh.SHA2_256)
	c := cid.NewCidV1(cid.Raw, m)
	rd := attest.Subject(c, sum[:], "proposals/p.patch")
	_, payload, err := attest.NewStatement(attest.PredicateProposal, []attest.ResourceDescriptor{rd}, attest.ProposalPredicate{
		Workspace: "/home/operator/nixos-config",
		Patch:     attest.PatchRef{CID: c.String(), SHA256: rd.SHA256(), Path: "proposals/p.patch"},
		AuditLine: attest.AuditLine{Snapshot: c.String(), Line: 1},
		Action:    "controller_run",
	})
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.SignEnvelope(context.Background(), attest.PayloadType, payload, s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
