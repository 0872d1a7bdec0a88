package tlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// serveLog serves l's handler the way agentix-store serve mounts it.
func serveLog(t testing.TB, l *Log) (*httptest.Server, *client.HTTPFetcher) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/log/")
	f, err := client.NewHTTPFetcher(u, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return srv, f
}

// TestTesseraClient has Tessera's own client read the log over HTTP: it
// fetches and verifies checkpoints, fetches every entry bundle, builds an
// inclusion proof for every entry and consistency proofs between
// checkpoints, all verified against our roots with transparency-dev/merkle.
func TestTesseraClient(t *testing.T) {
	ctx := context.Background()
	keys := newKeys(t, "example.com/tessera-check")
	l, _, _ := newTestLog(t, Options{Signer: keys.signer})
	_, f := serveLog(t, l)
	h := rfc6962.DefaultHasher

	var entries [][]byte
	type seen struct {
		cp  *flog.Checkpoint
		raw []byte
	}
	var cps []seen
	for _, size := range []int{1, 5, 256, 300, 513, 700} {
		for len(entries) < size {
			e := []byte(fmt.Sprintf("entry %d %s", len(entries), strings.Repeat("x", len(entries)%50)))
			if _, err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		cp, raw, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, keys.verifier, "example.com/tessera-check")
		if err != nil {
			t.Fatalf("FetchCheckpoint at %d: %v", size, err)
		}
		// Independently: formats/log.ParseCheckpoint and note.Open.
		if _, _, _, err := flog.ParseCheckpoint(raw, "example.com/tessera-check", keys.verifier); err != nil {
			t.Fatalf("formats/log.ParseCheckpoint: %v", err)
		}
		if _, err := note.Open(raw, note.VerifierList(keys.verifier)); err != nil {
			t.Fatalf("note.Open: %v", err)
		}
		if cp.Size != uint64(size) || !bytes.Equal(cp.Hash, refRoot(entries)) {
			t.Fatalf("checkpoint size %d root %x, want %d %x", cp.Size, cp.Hash, size, refRoot(entries))
		}
		cps = append(cps, seen{cp, raw})

		pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < cp.Size; i++ {
			// Entry bundles, including the partial last one.
			if i%layout.EntryBundleWidth == 0 {
				b, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, i/layout.EntryBundleWidth, cp.Size)
				if err != nil {
					t.Fatalf("GetEntryBundle(%d) at size %d: %v", i/layout.EntryBundleWidth, cp.Size, err)
				}
				for j, e := range b.Entries {
					if !bytes.Equal(e, entries[i+uint64(j)]) {
						t.Fatalf("bundle entry %d = %q, want %q", i+uint64(j), e, entries[i+uint64(j)])
					}
				}
			}
			p, err := pb.InclusionProof(ctx, i)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, cp.Size, err)
			}
			if err := proof.VerifyInclusion(h, i, cp.Size, h.HashLeaf(entries[i]), p, cp.Hash); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, cp.Size, err)
			}
		}
		for _, old := range cps {
			p, err := pb.ConsistencyProof(ctx, old.cp.Size, cp.Size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", old.cp.Size, cp.Size, err)
			}
			if err := proof.VerifyConsistency(h, old.cp.Size, cp.Size, p, old.cp.Hash, cp.Hash); err != nil {
				t.Fatalf("consistency %d→%d: %v", old.cp.Size, cp.Size, err)
			}
		}
	}
	// Tessera's LogStateTracker follows the log from the first checkpoint
	// to the latest, checking consistency itself.
	lst, err := client.NewLogStateTracker(ctx, f.ReadTile, cps[0].raw, keys.verifier, "example.com/tessera-check", client.UnilateralConsensus(f.ReadCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := lst.Update(ctx); err != nil {
		t.Fatalf("LogStateTracker.Update: %v", err)
	}
	if got := lst.Latest().Size; got != uint64(len(entries)) {
		t.Fatalf("tracker at size %d, want %d", got, len(entries))
	}
}

func TestHTTPTiles(t *testing.T) {
	ctx := context.Background()
	l, _, _ := newTestLog(t, Options{})
	srv, _ := serveLog(t, l)
	for i := range 300 {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path   string
		status int
		cache  string
		length int
	}{
		{"/log/checkpoint", 200, cacheCheckpoint, -1},
		{"/log/tile/0/000", 200, cacheImmutable, 256 * 32},
		{"/log/tile/0/001.p/44", 200, cachePartial, 44 * 32},
		{"/log/tile/0/001.p/10", 200, cachePartial, 10 * 32},
		{"/log/tile/0/001.p/45", 404, "", -1},
		{"/log/tile/0/001", 404, "", -1},
		{"/log/tile/1/000.p/1", 200, cachePartial, 32},
		{"/log/tile/1/000", 404, "", -1},
		{"/log/tile/entries/000", 200, cacheImmutable, -1},
		{"/log/tile/entries/001.p/44", 200, cachePartial, -1},
		{"/log/tile/entries/001.p/45", 404, "", -1},
		{"/log/tile/entries/x001/000", 404, "", -1},
		{"/log/tile/0/1", 400, "", -1},
		{"/log/tile/64/000", 400, "", -1},
		{"/log/tile/0/000.p/0", 400, "", -1},
		{"/log/tile/0/000.p/256", 400, "", -1},
		{"/log/tile/entries/abc", 400, "", -1},
		{"/log/nothing", 404, "", -1},
		{"/log/proof/inclusion?index=3&size=300", 200, "no-cache", -1},
		{"/log/proof/inclusion?index=300", 400, "", -1},
		{"/log/proof/inclusion?index=x", 400, "", -1},
		{"/log/proof/inclusion", 400, "", -1},
		{"/log/proof/inclusion?leaf_hash=zz", 400, "", -1},
		{"/log/proof/consistency?old=10&new=300", 200, "no-cache", -1},
		{"/log/proof/consistency?old=301", 400, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status >= 400 && len(bytes.TrimSpace(body)) == 0 {
				t.Fatalf("error without a reason")
			}
			if tt.cache != "" && resp.Header.Get("Cache-Control") != tt.cache {
				t.Fatalf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), tt.cache)
			}
			if tt.length >= 0 && len(body) != tt.length {
				t.Fatalf("body of %d bytes, want %d", len(body), tt.length)
			}
		})
	}
	// The full bundle parses per tlog-tiles and holds entries 0..255.
	resp, err := srv.Client().Get(srv.URL + "/log/tile/entries/000")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var b api.EntryBundle
	if err := b.UnmarshalText(body); err != nil || len(b.Entries) != 256 || !bytes.Equal(b.Entries[255], entryN(255)) {
		t.Fatalf("bundle: %d entries, %v", len(b.Entries), err)
	}
	// Writes to read paths are refused.
	resp, err = srv.Client().Post(srv.URL+"/log/checkpoint", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST checkpoint: %d", resp.StatusCode)
	}
}
