package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// GCResult reports one garbage collection.
type GCResult struct {
	// Removed is the number of blocks deleted.
	Removed int `json:"removed"`
	// FreedBytes is the total size of the deleted blocks (logical bytes;
	// pack space is freed before GC returns, badger's in the background).
	FreedBytes int64 `json:"freed_bytes"`
	// Kept is the number of blocks still stored.
	Kept int `json:"kept"`
}

// gcBatch is how many deletions go into one badger write batch flush.
const gcBatch = 4096

// GC deletes every block that is not reachable from a root:
//
//   - a recursive pin keeps every block of its DAG;
//   - a direct pin keeps only its own block;
//   - every CID returned by a registered RootSource is kept recursively;
//   - every CID held by an open Hold (a write in progress) and every pending
//     pin keeps the part of its DAG that is present.
//
// GC holds the store's GC lock exclusively for its whole run, so it waits for
// every in-flight writer holding GCLock (add, import, pin) and new writers
// wait for it: a block written under GCLock is never collected by a GC that
// overlaps the write.
//
// GC is conservative: when marking meets a root or an interior block it
// cannot read (missing, corrupt, undecodable, unknown codec) or a RootSource
// fails, it deletes nothing and returns that error, since the unreadable
// block's children cannot be told apart from garbage. Raw leaves are marked
// without being read. RootSources are called with the lock held and must not
// call GCLock themselves.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	marked, err := s.mark(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: mark: %w (nothing deleted)", err)
	}
	// Packs at or above protect may receive entries after the sweep's
	// snapshot (writers that do not hold the GC lock, like Put); older packs
	// never get new entries, so the snapshot's view of them is final.
	var protect uint32
	if s.bs.packs != nil {
		if protect, err = s.bs.packs.protectFrom(); err != nil {
			return GCResult{}, fmt.Errorf("gc: %w (nothing deleted)", err)
		}
	}
	sw, err := s.sweep(ctx, marked)
	if err != nil {
		return sw.res, fmt.Errorf("gc: sweep: %w", err)
	}
	s.freePackSpace(sw, protect)
	s.reclaimValueLog(ctx)
	return sw.res, nil
}

// swept is what a sweep deleted, and what the packs still hold.
type swept struct {
	res     GCResult
	live    map[uint32]int64 // pack -> end of its last kept block
	badRef  bool             // a kept entry's pack is unknown
	punches []packRef        // space of the deleted packed blocks
}

// sweep deletes, in one snapshot of the block index, every block not in
// marked, in write batches of gcBatch deletions (batchDeleter). The
// deletions are durable when it returns without error (synced when the
// store syncs writes or pack space is to be freed), so that a crash cannot
// leave an index entry pointing into a hole punched afterwards. On error
// sw.res counts what was deleted so far.
func (s *Store) sweep(ctx context.Context, marked map[string]struct{}) (*swept, error) {
	sw := &swept{live: map[uint32]int64{}}
	del := newBatchDeleter(s.db)
	defer del.cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = kv.PrefixBlocks
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			if _, ok := marked[string(item.Key()[len(kv.PrefixBlocks):])]; ok {
				sw.keep(item)
				continue
			}
			n, err := sw.drop(item)
			if err != nil {
				return err
			}
			if err := del.delete(item.KeyCopy(nil)); err != nil {
				return err
			}
			sw.res.Removed++
			sw.res.FreedBytes += n
		}
		return nil
	})
	if err == nil {
		err = del.flush()
	}
	if err == nil && (s.opts.SyncWrites || len(sw.punches) > 0) {
		err = s.db.Sync()
	}
	return sw, err
}

// packRefOf returns the pack reference of a block index entry, if the block
// is packed.
func packRefOf(item *badger.Item) (ref packRef, packed bool, err error) {
	if item.UserMeta() != metaPackRef {
		return packRef{}, false, nil
	}
	err = item.Value(func(v []byte) (err error) { ref, err = decodePackRef(v); return err })
	return ref, true, err
}

// keep counts a kept block; a packed one keeps its pack live up to the
// block's end, and one whose reference cannot be read keeps every pack.
func (sw *swept) keep(item *badger.Item) {
	sw.res.Kept++
	ref, packed, err := packRefOf(item)
	if packed {
		sw.live[ref.id] = max(sw.live[ref.id], ref.off+ref.span())
		sw.badRef = sw.badRef || err != nil
	}
}

// drop returns the size of a block about to be deleted and, for a packed
// one, records its space to be punched. A packed block whose reference
// cannot be read is deleted anyway, its space unknown (size 0).
func (sw *swept) drop(item *badger.Item) (int64, error) {
	ref, packed, err := packRefOf(item)
	switch {
	case packed && err == nil:
		sw.punches = append(sw.punches, ref)
		return ref.n, nil
	case packed:
		return 0, nil
	}
	return blockSize(item)
}

// freePackSpace punches the space of the swept packed blocks and, unless a
// kept entry's pack is unknown, trims or drops the packs below protect by
// what they still hold. Best effort: the blocks are gone whether or not
// their space is freed now.
func (s *Store) freePackSpace(sw *swept, protect uint32) {
	if s.bs.packs == nil {
		return
	}
	for _, r := range sw.punches {
		_ = s.bs.packs.punch(r)
	}
	if !sw.badRef {
		_ = s.bs.packs.trim(sw.live, protect)
	}
}

// reclaimValueLog rewrites badger value-log files where at least half a
// file is garbage, until none is left or ctx ends; best effort, it never
// fails the GC.
func (s *Store) reclaimValueLog(ctx context.Context) {
	for s.db.RunValueLogGC(0.5) == nil {
		if ctx.Err() != nil {
			break
		}
	}
}

// batchDeleter deletes keys through badger write batches of at most
// gcBatch deletions, each flushed when full.
type batchDeleter struct {
	db      *badger.DB
	wb      *badger.WriteBatch
	pending int
}

func newBatchDeleter(db *badger.DB) *batchDeleter {
	return &batchDeleter{db: db, wb: db.NewWriteBatch()}
}

// delete adds the deletion of k, flushing the batch when it is full.
func (d *batchDeleter) delete(k []byte) error {
	if err := d.wb.Delete(k); err != nil {
		return err
	}
	if d.pending++; d.pending == gcBatch {
		if err := d.wb.Flush(); err != nil {
			return err
		}
		d.wb = d.db.NewWriteBatch()
		d.pending = 0
	}
	return nil
}

// flush writes the deletions not yet flushed.
func (d *batchDeleter) flush() error { return d.wb.Flush() }

// cancel discards the deletions not flushed (none after flush).
func (d *batchDeleter) cancel() { d.wb.Cancel() }

// mark returns the set of multihashes (as strings) reachable from every root.
func (s *Store) mark(ctx context.Context) (map[string]struct{}, error) {
	// The held roots are read first: a writer makes its durable root
	// visible (a pin, an index entry) and only then releases its Hold, and
	// neither step waits for GC. Reading the Holds before every other
	// root means a write released after this read has its root visible to
	// the reads below; read last, a write could commit its root after the
	// root sources were read and release before the Holds were.
	held := s.heldRoots()
	marked := map[string]struct{}{}
	seen := map[string]struct{}{}
	markFn := func(c cid.Cid, _ blocks.Block) error {
		marked[string(c.Hash())] = struct{}{}
		return nil
	}
	pins, err := s.Pins(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pins {
		if p.Direct {
			marked[string(p.Cid.Hash())] = struct{}{}
			continue
		}
		if err := s.walk(ctx, p.Cid, seen, leafSkip, markFn); err != nil {
			return nil, fmt.Errorf("pin %s: %w", p.Cid, err)
		}
	}

	s.rootsMu.Lock()
	names := make([]string, 0, len(s.roots))
	srcs := make(map[string]RootSource, len(s.roots))
	for n, src := range s.roots {
		names = append(names, n)
		srcs[n] = src
	}
	s.rootsMu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		roots, err := srcs[n](ctx)
		if err != nil {
			return nil, fmt.Errorf("root source %q: %w", n, err)
		}
		for _, r := range roots {
			err := s.walk(ctx, r, seen, leafSkip, markFn)
			var mb *MissingBlockError
			if errors.As(err, &mb) && mb.Cid.Equals(r) {
				// A root source may name a block this node never held
				// (e.g. a log entry's subject): nothing to keep.
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("root source %q: root %s: %w", n, r, err)
			}
		}
	}
	// Writes in progress (Holds): keep whatever part of each is here.
	for _, r := range held {
		if err := s.markPresent(ctx, r, marked); err != nil {
			return nil, fmt.Errorf("held root %s: %w", r, err)
		}
	}
	// DAGs being fetched from peers: keep whatever part is already here.
	pending, err := s.pendingPins(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range pending {
		if err := s.markPresent(ctx, r, marked); err != nil {
			return nil, fmt.Errorf("pending pin %s: %w", r, err)
		}
	}
	return marked, nil
}

// markPresent marks every block reachable from root that is present,
// skipping missing subtrees (a DAG still being fetched).
func (s *Store) markPresent(ctx context.Context, root cid.Cid, marked map[string]struct{}) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := marked[string(c.Hash())]; ok {
			continue
		}
		if c.Type() == cid.Raw {
			if ok, err := s.bs.Has(ctx, c); err != nil {
				return err
			} else if ok {
				marked[string(c.Hash())] = struct{}{}
			}
			continue
		}
		blk, err := s.bs.Get(ctx, c)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		marked[string(c.Hash())] = struct{}{}
		links, err := Links(blk)
		if err != nil {
			return err
		}
		stack = append(stack, links...)
	}
	return nil
}
