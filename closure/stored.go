package closure

import (
	"context"
	"fmt"

	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// IndexStored verifies the closure c whose blocks are already in st (as
// after store.PinFrom) and, if it verifies, pins it as ImportCAR does
// ("closure <root>") and indexes it, so the binary cache serves it. It is
// ImportCAR without the CAR: the blocks are read where they are, once
// (Verify: every block hash-checked as it is read, every NAR parsed and
// checked against its record's narHash and narSize), instead of being
// exported, copied and checked again. c is held as a GC root (the
// "closure/in-flight" source) until it is pinned. A closure that does not
// verify is neither pinned nor indexed; the error is Verify's.
func IndexStored(ctx context.Context, st *store.Store, db *badger.DB, c cid.Cid) (*VerifyResult, error) {
	fl := inflightOf(st)
	fl.add(c)
	defer fl.remove([]cid.Cid{c})
	cl, entries, err := Load(ctx, st, c)
	if err != nil {
		return nil, err
	}
	vr, err := verifyLoaded(ctx, st, c, cl, entries)
	if err != nil {
		return nil, err
	}
	if err := st.Pin(ctx, c, store.PinOptions{Name: "closure " + cl.Root}); err != nil {
		return nil, fmt.Errorf("pin closure %s: %w", c, err)
	}
	recs := make(map[string]*StorePathInfo, len(entries))
	cids := make(map[string]cid.Cid, len(entries))
	for _, e := range entries {
		recs[e.Path] = newStorePathInfo(e.PathInfo, e.NAR)
		cids[e.Path] = e.Info
	}
	if err := index(db, c, cl, recs, cids, vr.NarBytes); err != nil {
		return nil, err
	}
	return vr, nil
}
