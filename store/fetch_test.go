package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/ipfs/go-cid"
)

func fetchStore(t *testing.T) *Store {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db, Options{})
}

// cutAfter serves h but breaks every response body after n bytes while
// *cuts > 0, and flips one byte at offset flip (if ≥ 0) while *flips > 0.
type faultyPeer struct {
	h           http.Handler
	cuts, flips atomic.Int32
	cutAt       int
	flipAt      int
}

func (f *faultyPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.cuts.Load() <= 0 && f.flips.Load() <= 0 {
		f.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	if f.flips.Add(-1) >= 0 && len(body) > f.flipAt {
		body = bytes.Clone(body)
		body[f.flipAt] ^= 0x55
	}
	w.WriteHeader(rec.Code)
	if f.cuts.Add(-1) >= 0 && len(body) > f.cutAt {
		w.Write(body[:f.cutAt])
		panic(http.ErrAbortHandler)
	}
	w.Write(body)
}

func addRandom(t *testing.T, s *Store, n int, seed uint64) (cid.Cid, []byte) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	c, err := s.Add(context.Background(), bytes.NewReader(data), AddOptions{Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	return c, data
}

func TestPinFromResumesAfterInterruption(t *testing.T) {
	ctx := context.Background()
	peer := fetchStore(t)
	root, data := addRandom(t, peer, 5<<20+123, 1) // 21 leaves
	gw, err := peer.GatewayHandler(nil)
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultyPeer{h: gw, cutAt: 1 << 20}
	srv := httptest.NewServer(fp)
	defer srv.Close()

	local := fetchStore(t)
	// A broken stream is retried at once for the missing subtrees.
	fp.cuts.Store(1)
	other := fetchStore(t)
	if r, err := other.PinFrom(ctx, srv.URL, root, FetchOptions{}); err != nil || r.Requests < 2 {
		t.Fatalf("fetch over a connection cut once: %+v, %v", r, err)
	}
	// The process is interrupted mid-fetch (here: its context is cancelled).
	cctx, cancel := context.WithCancel(ctx)
	res, err := local.PinFrom(cctx, srv.URL, root, FetchOptions{Name: "from-peer", Progress: func(n int, _ int64) {
		if n == 6 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v, want context.Canceled", err)
	}
	if res.Fetched == 0 {
		t.Fatal("no block kept from the interrupted stream")
	}
	if ok, _ := local.IsPinned(ctx, root); ok {
		t.Fatal("incomplete DAG pinned")
	}
	// GC in between keeps the part already fetched.
	before, _ := local.Stat(ctx)
	if _, err := local.GC(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := local.Stat(ctx)
	if after.Blocks != before.Blocks {
		t.Fatalf("GC collected %d blocks of a pending pin", before.Blocks-after.Blocks)
	}

	res2, err := local.PinFrom(ctx, srv.URL, root, FetchOptions{Name: "from-peer"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Present < res.Fetched || res2.Fetched+res2.Present != 22 {
		t.Fatalf("resume: first %+v, second %+v; want the second to reuse the first's blocks", res, res2)
	}
	if ok, _ := local.IsPinned(ctx, root); !ok {
		t.Fatal("complete DAG not pinned")
	}
	f, err := local.Cat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, data) {
		t.Fatal("pinned DAG does not cat to the peer's bytes")
	}
	if p, _ := local.pendingPins(ctx); len(p) != 0 {
		t.Fatalf("pending pins left: %v", p)
	}
}

func TestPinFromRejectsBadBlocks(t *testing.T) {
	ctx := context.Background()
	peer := fetchStore(t)
	root, _ := addRandom(t, peer, 600000, 2)
	gw, _ := peer.GatewayHandler(nil)
	fp := &faultyPeer{h: gw, flipAt: 200}
	fp.flips.Store(100)
	srv := httptest.NewServer(fp)
	defer srv.Close()
	local := fetchStore(t)
	_, err := local.PinFrom(ctx, srv.URL, root, FetchOptions{MaxAttempts: 2})
	var cbe *CorruptBlockError
	if !errors.Is(err, ErrPeer) || !errors.As(err, &cbe) {
		t.Fatalf("corrupting peer: %v, want ErrPeer wrapping a CorruptBlockError", err)
	}
	// Every block stored verifies.
	ch, _ := local.bs.AllKeysChan(ctx)
	for c := range ch {
		if _, err := local.bs.Get(ctx, c); err != nil {
			t.Fatalf("stored block %s does not verify: %v", c, err)
		}
	}
	for _, bad := range []string{"ftp://x", "not a url", "http://"} {
		if _, err := local.PinFrom(ctx, bad, root, FetchOptions{}); err == nil {
			t.Errorf("peer %q accepted", bad)
		}
	}
}
