package api

import (
	"context"
	"io"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mc "github.com/multiformats/go-multicodec"
)

// Backend is what the CLI's store and log commands need from a node, either
// opened in-process (Local) or reached through its daemon (Client).
type Backend interface {
	Add(ctx context.Context, r io.Reader, o store.AddOptions) (AddResult, error)
	CatRange(ctx context.Context, c cid.Cid, offset, length int64) (io.ReadCloser, error)
	PutBlock(ctx context.Context, b blocks.Block) error
	GetBlock(ctx context.Context, c cid.Cid) ([]byte, error)
	BlockSize(ctx context.Context, c cid.Cid) (int, error)
	ImportCAR(ctx context.Context, r io.Reader, o store.ImportOptions) (ImportResult, error)
	ExportCAR(ctx context.Context, w io.Writer, c cid.Cid, o store.ExportOptions) error
	Pin(ctx context.Context, c cid.Cid, o store.PinOptions) error
	Unpin(ctx context.Context, c cid.Cid) error
	Pins(ctx context.Context) ([]Pin, error)
	PinFrom(ctx context.Context, peer, target, name string, progress func(int, int64)) (PinFromResult, error)
	GC(ctx context.Context) (store.GCResult, error)
	Stat(ctx context.Context) (store.Stats, error)
	LogAppend(ctx context.Context, entry []byte) (uint64, error)
	Publish(ctx context.Context, envelope []byte) (PublishResult, error)

	// Ingest ingests a workspace (a path on the node's machine) once;
	// progress is called with bytes done and total, when known.
	Ingest(ctx context.Context, req IngestRequest, progress func(done, total int64)) (*IngestView, error)
	ClosureImport(ctx context.Context, req ClosureImportRequest, progress func(done, total int64)) (*ClosureImported, error)
	ClosureImportCAR(ctx context.Context, r io.Reader) (*ClosureVerified, error)
	Closures(ctx context.Context) ([]ClosureSummary, error)
	ClosureEntries(ctx context.Context, c cid.Cid) ([]ClosureEntry, error)
	ClosureVerify(ctx context.Context, c cid.Cid) (*ClosureVerified, error)
	ClosureExport(ctx context.Context, w io.Writer, c cid.Cid) error
	ClosureDiff(ctx context.Context, a, b cid.Cid) (*closure.DiffResult, error)
	// AttestRunning publishes a running-config for c signed by signer (nil:
	// the node's attestation key; a Client accepts only nil: the daemon
	// signs with its own key).
	AttestRunning(ctx context.Context, c cid.Cid, signer *attest.Signer, req RunningRequest) (*RunningResult, error)
	RecordGenesis(ctx context.Context, workspace string) (*node.Genesis, error)
	Attestations(ctx context.Context, q attest.Query) ([]attest.Record, error)
	Bundle(ctx context.Context, id cid.Cid, withCAR bool) ([]byte, error)
	Checkpoint(ctx context.Context) (*Checkpoint, error)
	// LogEntries returns the entries in [from, to); to < 0: to the end.
	LogEntries(ctx context.Context, from uint64, to int64) ([]LogEntry, error)
	Inclusion(ctx context.Context, req InclusionRequest) (*Inclusion, error)
	Consistency(ctx context.Context, old, new uint64) (*Consistency, error)
	Close() error
}

// Local is a Backend on a node opened in this process.
type Local struct{ N *node.Node }

func (l Local) Add(ctx context.Context, r io.Reader, o store.AddOptions) (AddResult, error) {
	var size int64
	p := o.Progress
	o.Progress = func(n int64) {
		size = n
		if p != nil {
			p(n)
		}
	}
	c, err := l.N.Store.Add(ctx, r, o)
	if err != nil {
		return AddResult{}, err
	}
	return AddResult{CID: c.String(), Size: size}, nil
}

func (l Local) CatRange(ctx context.Context, c cid.Cid, off, n int64) (io.ReadCloser, error) {
	return l.N.Store.CatRange(ctx, c, off, n)
}

func (l Local) PutBlock(ctx context.Context, b blocks.Block) error {
	return l.N.Store.Blockstore().Put(ctx, b)
}

func (l Local) GetBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	b, err := l.N.Store.Blockstore().Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return b.RawData(), nil
}

func (l Local) BlockSize(ctx context.Context, c cid.Cid) (int, error) {
	return l.N.Store.Blockstore().GetSize(ctx, c)
}

func (l Local) ImportCAR(ctx context.Context, r io.Reader, o store.ImportOptions) (ImportResult, error) {
	res, err := l.N.Store.ImportCAR(ctx, r, o)
	if err != nil {
		return ImportResult{}, err
	}
	out := ImportResult{Blocks: res.Blocks, Bytes: res.Bytes, Roots: []string{}}
	for _, c := range res.Roots {
		out.Roots = append(out.Roots, c.String())
	}
	return out, nil
}

func (l Local) ExportCAR(ctx context.Context, w io.Writer, c cid.Cid, o store.ExportOptions) error {
	return l.N.Store.ExportCAR(ctx, w, c, o)
}

func (l Local) Pin(ctx context.Context, c cid.Cid, o store.PinOptions) error {
	return l.N.Store.Pin(ctx, c, o)
}

func (l Local) PinFrom(ctx context.Context, peer, target, name string, progress func(int, int64)) (PinFromResult, error) {
	return pinFrom(ctx, l.N, peer, target, name, progress)
}

func (l Local) Unpin(ctx context.Context, c cid.Cid) error { return l.N.Store.Unpin(ctx, c) }

func (l Local) Pins(ctx context.Context) ([]Pin, error) {
	ps, err := l.N.Store.Pins(ctx)
	if err != nil {
		return nil, err
	}
	out := []Pin{}
	for _, p := range ps {
		out = append(out, pinJSON(p))
	}
	return out, nil
}

func (l Local) GC(ctx context.Context) (store.GCResult, error) { return l.N.Store.GC(ctx) }
func (l Local) Stat(ctx context.Context) (store.Stats, error)  { return l.N.Store.Stat(ctx) }
func (l Local) LogAppend(ctx context.Context, e []byte) (uint64, error) {
	return l.N.Log.Append(ctx, e)
}
func (l Local) Publish(ctx context.Context, env []byte) (PublishResult, error) {
	p, err := l.N.Publisher().Publish(ctx, env)
	if err != nil {
		return PublishResult{}, err
	}
	return PublishResult{ID: p.ID.String(), LogIndex: p.LogIndex, Existing: p.Existing}, nil
}

func (l Local) Close() error { return l.N.Close() }

func codecName(c cid.Cid) string {
	return mc.Code(c.Prefix().Codec).String()
}
