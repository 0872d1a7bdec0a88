package store

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/gateway"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"
)

// GatewayHandler returns a trustless IPFS gateway over the local blocks only
// (no network retrieval, no DNSLink, no IPNS), to be mounted at /ipfs/.
//
// It is boxo's gateway in trustless mode: `GET /ipfs/<cid>[/path]` answers
// `?format=raw` / `Accept: application/vnd.ipld.raw` with the exact block
// bytes and `?format=car` / `Accept: application/vnd.ipld.car` with a CAR of
// the DAG (dag-scope, entity-bytes and dups per the trustless gateway spec).
// Deserialized responses (plain file bytes) are off: clients verify what they
// fetch. A block missing locally is a 404-class error, never a network fetch.
func (s *Store) GatewayHandler(reg prometheus.Registerer) (http.Handler, error) {
	bsvc := blockservice.New(&recordingBlockstore{s.bs}, nil)
	backend, err := gateway.NewBlocksBackend(bsvc)
	if err != nil {
		return nil, fmt.Errorf("gateway backend: %w", err)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	h := gateway.NewHandler(gateway.Config{
		DeserializedResponses: false,
		NoDNSLink:             true,
		DisableHTMLErrors:     true,
		MetricsRegistry:       reg,
	}, backend)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &blockErrs{}
		aw := &abortOnStreamError{ResponseWriter: w}
		h.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), blockErrsKey{}, rec)))
		// boxo ends a CAR whose traversal met a missing or corrupt block
		// as if it were complete (or, for a missing root, answers an empty
		// CAR). A successful status over a failed read is aborted, so the
		// client never takes the stream for the whole DAG.
		if err := rec.get(); aw.failed || err != nil && aw.status/100 == 2 {
			panic(http.ErrAbortHandler)
		}
	}), nil
}

// blockErrs records the first block read that failed while serving one
// gateway request.
type blockErrs struct {
	mu  sync.Mutex
	err error
}

type blockErrsKey struct{}

func (b *blockErrs) set(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *blockErrs) get() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// recordingBlockstore is the gateway's view of the block store: a block
// read that fails (missing, corrupt) is recorded on the request.
type recordingBlockstore struct{ bs *Blockstore }

func (r *recordingBlockstore) record(ctx context.Context, err error) {
	if err != nil && ctx.Err() == nil {
		if rec, ok := ctx.Value(blockErrsKey{}).(*blockErrs); ok {
			rec.set(err)
		}
	}
}

func (r *recordingBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := r.bs.Get(ctx, c)
	r.record(ctx, err)
	return b, err
}

func (r *recordingBlockstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	n, err := r.bs.GetSize(ctx, c)
	r.record(ctx, err)
	return n, err
}

func (r *recordingBlockstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return r.bs.Has(ctx, c)
}

func (r *recordingBlockstore) DeleteBlock(ctx context.Context, c cid.Cid) error {
	return r.bs.DeleteBlock(ctx, c)
}

func (r *recordingBlockstore) Put(ctx context.Context, b blocks.Block) error { return r.bs.Put(ctx, b) }

func (r *recordingBlockstore) PutMany(ctx context.Context, bs []blocks.Block) error {
	return r.bs.PutMany(ctx, bs)
}

func (r *recordingBlockstore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	return r.bs.AllKeysChan(ctx)
}

// abortOnStreamError aborts a response that failed after its status line
// was committed. boxo's gateway, when a CAR (or TAR) stream fails partway
// (a block missing or not matching its CID), sets an X-Stream-Error
// trailer nobody reads and appends a text marker to a 200 body; a client
// that stops at the end of the last complete section could take that for a
// complete CAR. Instead the handler is aborted (http.ErrAbortHandler): the
// connection is closed without the chunked terminator, so every client
// sees an unexpected EOF (or, for a response still in net/http's buffer, a
// connection closed without an answer). A failure before any byte was written gets a 502
// carrying the error, never a 200.
type abortOnStreamError struct {
	http.ResponseWriter
	wrote  bool
	status int
	failed bool // a stream error after the status line: abort
}

func (a *abortOnStreamError) WriteHeader(code int) {
	if !a.wrote {
		a.status = code
	}
	a.wrote = true
	a.ResponseWriter.WriteHeader(code)
}

func (a *abortOnStreamError) Write(p []byte) (int, error) {
	if msg := a.Header().Get("X-Stream-Error"); msg != "" {
		if !a.wrote {
			a.wrote, a.status = true, http.StatusBadGateway
			h := a.Header()
			h.Del("X-Stream-Error")
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Del("Content-Length")
			a.ResponseWriter.WriteHeader(http.StatusBadGateway)
			a.ResponseWriter.Write([]byte("stream failed: " + msg + "\n"))
			return len(p), nil
		}
		// Not a panic here: boxo's handler would recover it and try to
		// answer 500 over the committed 200. GatewayHandler aborts once
		// boxo returns.
		a.failed = true
		return 0, http.ErrAbortHandler
	}
	if a.failed {
		return 0, http.ErrAbortHandler
	}
	if !a.wrote {
		a.wrote, a.status = true, http.StatusOK
	}
	return a.ResponseWriter.Write(p)
}

func (a *abortOnStreamError) Flush() { _ = http.NewResponseController(a.ResponseWriter).Flush() }

func (a *abortOnStreamError) Unwrap() http.ResponseWriter { return a.ResponseWriter }
