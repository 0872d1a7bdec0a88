package tlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
)

// The leaf-hash index finds an entry's index from its RFC 6962 leaf hash.
// It is built behind the sequencer, not by it: a commit writes only the
// batch's entries, tiles, state and checkpoint, and the leaf hashes are
// already in the level-0 tiles it writes. The indexer goroutine turns them
// into sorted runs, a few badger keys per million entries instead of one
// key per entry:
//
//	l/x/<level:1><first:8>   run: the entries [first, first+runLen(level)),
//	                         as 16-byte records (first 8 bytes of the leaf
//	                         hash, index; both big-endian), sorted
//	l/w                      watermark w: the runs cover exactly [0, w)
//
// A level-0 run covers runLen(0) = 4096 entries (16 tiles); runFanout runs
// of one level are merged into one of the next as soon as they are all
// there, up to level maxRunLevel (runs of 1,048,576 entries, 16 MiB). Each
// step — a new run, the merges it completes, the deletion of the merged
// runs and the new watermark — is one badger transaction, so a crash leaves
// the index as it was before or after the step, never in between.
//
// A lookup reads the runs and the watermark in one snapshot, binary-searches
// each run for the hash's 8-byte prefix, confirms a candidate against the
// full leaf hash in its tile, and scans the level-0 tiles of the entries
// from w on (fewer than 4096, plus any backlog). So the index makes lookups
// fast and is never needed for them to be correct.
var (
	pfxIndexRun = append(bytes.Clone(kv.PrefixLog), "x/"...)
	keyIndexed  = append(bytes.Clone(kv.PrefixLog), 'w')
)

// The shape of the runs is part of the storage format (tests shrink it).
var (
	runLevel0   uint64 = 4096 // entries in a level-0 run
	runFanout   uint64 = 16
	maxRunLevel        = 2
)

const (
	recSize = 16
	// indexEvery is how often the indexer looks for new entries.
	indexEvery = 100 * time.Millisecond
	// indexKickLag is the backlog at which the sequencer wakes the indexer
	// early, so a lookup's tile scan stays short under load.
	indexKickLag = 16384
)

func runLen(level int) uint64 {
	n := runLevel0
	for range level {
		n *= runFanout
	}
	return n
}

func indexRunKey(level int, first uint64) []byte {
	k := append(bytes.Clone(pfxIndexRun), byte(level))
	return binary.BigEndian.AppendUint64(k, first)
}

// readIndexed returns the stored watermark (0 if none) and whether it was
// there.
func readIndexed(txn *badger.Txn) (uint64, bool, error) {
	it, err := txn.Get(keyIndexed)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var w uint64
	err = it.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: index watermark of %d bytes", ErrCorrupt, len(v))
		}
		w = binary.BigEndian.Uint64(v)
		return nil
	})
	return w, true, err
}

// recoverIndexed sets l.indexed from the stored watermark. Logs written
// before the runs existed kept one l/h/<hash><index> key per entry: those
// are dropped and the runs built afresh, in the background.
func (l *Log) recoverIndexed(size uint64) error {
	var w uint64
	var had bool
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		w, had, err = readIndexed(txn)
		return err
	})
	if err != nil {
		return err
	}
	if w > size || w%runLevel0 != 0 {
		return fmt.Errorf("%w: index watermark %d (tree size %d)", ErrCorrupt, w, size)
	}
	if !had && l.hasOldIndex() {
		if err := l.db.DropPrefix(pfxLeaf); err != nil {
			return fmt.Errorf("drop the old per-entry index: %w", err)
		}
	}
	l.indexed.Store(w)
	return nil
}

// hasOldIndex tells whether any per-entry key of the old index is left.
func (l *Log) hasOldIndex() bool {
	found := false
	_ = l.db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.PrefetchValues = false
		io.Prefix = pfxLeaf
		it := txn.NewIterator(io)
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	return found
}

// runIndexer is the indexer goroutine; it stops when l.idxQuit is closed.
func (l *Log) runIndexer() {
	defer close(l.idxDone)
	t := time.NewTicker(indexEvery)
	defer t.Stop()
	for {
		select {
		case <-l.idxQuit:
			return
		case <-t.C:
		case <-l.idxKick:
		}
		if err := l.indexUpTo(l.Size()); err != nil {
			l.opts.Logf("log: leaf-hash index: %v", err)
		}
	}
}

// kickIndexer wakes the indexer if the backlog is long; it never blocks.
func (l *Log) kickIndexer(size uint64) {
	if size-l.indexed.Load() >= indexKickLag {
		select {
		case l.idxKick <- struct{}{}:
		default:
		}
	}
}

// rec is one index record: the first 8 bytes of a leaf hash and the index.
type rec struct{ prefix, index uint64 }

func cmpRec(a, b rec) int {
	if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
		return c
	}
	return cmp.Compare(a.index, b.index)
}

func encodeRecs(rs []rec) []byte {
	v := make([]byte, 0, len(rs)*recSize)
	for _, r := range rs {
		v = binary.BigEndian.AppendUint64(v, r.prefix)
		v = binary.BigEndian.AppendUint64(v, r.index)
	}
	return v
}

func decodeRecs(v []byte, into []rec) ([]rec, error) {
	if len(v)%recSize != 0 {
		return nil, fmt.Errorf("%w: index run of %d bytes", ErrCorrupt, len(v))
	}
	for p := 0; p < len(v); p += recSize {
		into = append(into, rec{binary.BigEndian.Uint64(v[p:]), binary.BigEndian.Uint64(v[p+8:])})
	}
	return into, nil
}

// indexUpTo adds level-0 runs (and the merges they complete) until fewer
// than runLevel0 committed entries of the first size are left unindexed.
func (l *Log) indexUpTo(size uint64) error {
	l.idxMu.Lock()
	defer l.idxMu.Unlock()
	for w := l.indexed.Load(); w+runLevel0 <= size; w = l.indexed.Load() {
		select {
		case <-l.idxQuit:
			return nil
		default:
		}
		if err := l.addRun(w); err != nil {
			return err
		}
		l.indexed.Store(w + runLevel0)
	}
	return nil
}

// addRun writes the level-0 run of [w, w+runLevel0) and the merges it
// completes, and moves the watermark past it, in one transaction.
func (l *Log) addRun(w uint64) error {
	// The run and its merges are written before the merged runs are
	// deleted: claim the largest (see kv.Claim).
	top := 0
	for top < maxRunLevel && (w+runLevel0)%runLen(top+1) == 0 {
		top++
	}
	release, err := kv.Claim(l.db, int64(runLen(top))*recSize)
	if err != nil {
		return fmt.Errorf("index run at %d: %w", w, err)
	}
	defer release()
	return l.db.Update(func(txn *badger.Txn) error {
		rs := make([]rec, 0, int(runLevel0))
		if err := leafHashes(txn, w, w+runLevel0, func(i uint64, h []byte) bool {
			rs = append(rs, rec{binary.BigEndian.Uint64(h), i})
			return true
		}); err != nil {
			return err
		}
		slices.SortFunc(rs, cmpRec)
		level, first, end := 0, w, w+runLevel0
		for level < maxRunLevel && end%runLen(level+1) == 0 {
			// The run just made completes runFanout runs of its level:
			// merge them (the others are stored) into one of the next.
			up := end - runLen(level+1)
			merged := make([]rec, 0, runLen(level+1))
			for f := up; f < first; f += runLen(level) {
				k := indexRunKey(level, f)
				it, err := txn.Get(k)
				if err != nil {
					return fmt.Errorf("%w: index run %d/%d: %v", ErrCorrupt, level, f, err)
				}
				if err := it.Value(func(v []byte) error {
					merged, err = decodeRecs(v, merged)
					return err
				}); err != nil {
					return err
				}
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			merged = append(merged, rs...)
			slices.SortFunc(merged, cmpRec)
			rs, level, first = merged, level+1, up
		}
		if err := txn.Set(indexRunKey(level, first), encodeRecs(rs)); err != nil {
			return fmt.Errorf("write index run %d/%d: %w", level, first, err)
		}
		if err := txn.Set(keyIndexed, binary.BigEndian.AppendUint64(nil, end)); err != nil {
			return err
		}
		return nil
	})
}

// leafHashes calls fn with the leaf hash of each entry in [from, to), in
// order, read from the level-0 tiles, until fn returns false. The entries
// must be committed in txn's snapshot.
func leafHashes(txn *badger.Txn, from, to uint64, fn func(i uint64, h []byte) bool) error {
	for i := from; i < to; {
		n := i / tileWidth
		t, err := readTile(txn, 0, n)
		if err != nil {
			return err
		}
		end := min(to, (n+1)*tileWidth)
		if uint64(len(t)) < (end-n*tileWidth)*hashSize {
			return fmt.Errorf("%w: level-0 tile %d holds %d hashes, entry %d needs more", ErrCorrupt, n, len(t)/hashSize, end-1)
		}
		for ; i < end; i++ {
			o := (i % tileWidth) * hashSize
			if !fn(i, t[o:o+hashSize:o+hashSize]) {
				return nil
			}
		}
	}
	return nil
}

// leafHashAt returns the leaf hash of entry i from its level-0 tile.
func leafHashAt(txn *badger.Txn, i uint64) ([]byte, error) {
	var h []byte
	err := leafHashes(txn, i, i+1, func(_ uint64, lh []byte) bool { h = lh; return false })
	return h, err
}

// findLeaf returns the lowest index below size whose leaf hash is h.
func (l *Log) findLeaf(ctx context.Context, h []byte, size uint64) (index uint64, found bool, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		w, _, err := readIndexed(txn)
		if err != nil {
			return err
		}
		w = min(w, size)
		prefix := binary.BigEndian.Uint64(h)
		io := badger.DefaultIteratorOptions
		io.PrefetchValues = false
		io.Prefix = pfxIndexRun
		it := txn.NewIterator(io)
		defer it.Close()
		var cands []uint64
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := it.Item().Value(func(v []byte) error {
				if len(v)%recSize != 0 {
					return fmt.Errorf("%w: index run %x of %d bytes", ErrCorrupt, it.Item().Key(), len(v))
				}
				n := len(v) / recSize
				j := sort.Search(n, func(j int) bool { return binary.BigEndian.Uint64(v[j*recSize:]) >= prefix })
				for ; j < n && binary.BigEndian.Uint64(v[j*recSize:]) == prefix; j++ {
					if i := binary.BigEndian.Uint64(v[j*recSize+8:]); i < w {
						cands = append(cands, i)
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		slices.Sort(cands)
		for _, i := range cands {
			lh, err := leafHashAt(txn, i)
			if err != nil {
				return err
			}
			if bytes.Equal(lh, h) {
				index, found = i, true
				return nil
			}
		}
		// Not among the indexed entries: scan the rest.
		return leafHashes(txn, w, size, func(i uint64, lh []byte) bool {
			if bytes.Equal(lh, h) {
				index, found = i, true
			}
			return !found && (i%tileWidth != 0 || ctx.Err() == nil)
		})
	})
	if err == nil && !found && ctx.Err() != nil {
		err = ctx.Err()
	}
	return index, found, err
}
