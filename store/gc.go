package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/agentix/agentix-store/internal/kv"
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

	var res GCResult
	marked, err := s.mark(ctx)
	if err != nil {
		return res, fmt.Errorf("gc: mark: %w (nothing deleted)", err)
	}

	// Packs at or above protect may receive entries after the snapshot
	// below (writers that do not hold the GC lock, like Put); older packs
	// never get new entries, so the snapshot's view of them is final.
	var (
		protect  uint32
		live     = map[uint32]int64{} // pack -> end of its last kept block
		badRef   bool                 // a kept entry's pack is unknown
		punches  []packRef            // space of the deleted packed blocks
		packsErr error
	)
	if s.bs.packs != nil {
		if protect, packsErr = s.bs.packs.protectFrom(); packsErr != nil {
			return res, fmt.Errorf("gc: %w (nothing deleted)", packsErr)
		}
	}

	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	pending := 0
	err = s.db.View(func(txn *badger.Txn) error {
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
			h := item.Key()[len(kv.PrefixBlocks):]
			var (
				ref    packRef
				packed = item.UserMeta() == metaPackRef
				rerr   error
			)
			if packed {
				rerr = item.Value(func(v []byte) (err error) { ref, err = decodePackRef(v); return err })
			}
			if _, ok := marked[string(h)]; ok {
				res.Kept++
				if packed {
					live[ref.id] = max(live[ref.id], ref.off+ref.span())
					badRef = badRef || rerr != nil
				}
				continue
			}
			n, err := blockSize(item)
			if packed && rerr == nil {
				punches = append(punches, ref)
			} else if packed {
				n, err = 0, nil // deleted anyway; its space is unknown
			}
			if err != nil {
				return err
			}
			if err := wb.Delete(item.KeyCopy(nil)); err != nil {
				return err
			}
			res.Removed++
			res.FreedBytes += n
			if pending++; pending == gcBatch {
				if err := wb.Flush(); err != nil {
					return err
				}
				wb = s.db.NewWriteBatch()
				pending = 0
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	// Deletions are made durable before any pack space is freed, so that a
	// crash cannot leave an index entry pointing into a hole.
	if err == nil && (s.opts.SyncWrites || len(punches) > 0) {
		err = s.db.Sync()
	}
	if err != nil {
		return res, fmt.Errorf("gc: sweep: %w", err)
	}
	if s.bs.packs != nil {
		// Best effort: the blocks are gone whether or not their space is
		// freed now.
		for _, r := range punches {
			_ = s.bs.packs.punch(r)
		}
		if !badRef {
			_ = s.bs.packs.trim(live, protect)
		}
	}
	// Reclaim value-log space where at least half a file is garbage; this is
	// best effort and never fails the GC.
	for s.db.RunValueLogGC(0.5) == nil {
		if ctx.Err() != nil {
			break
		}
	}
	return res, nil
}

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
