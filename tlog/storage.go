package tlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Storage layout, all under kv.PrefixLog ("l/"):
//
//	l/b/<first index:8>        a run of consecutive entries (see below)
//	l/x/<level:1><first:8>     leaf-hash index run (leafindex.go)
//	l/w                        leaf-hash index watermark (leafindex.go)
//	l/t/<level:1><index:8>     hash tile: concatenated 32-byte hashes, 1..256 of them
//	l/s                        tree state: size:8 || compact range hashes (32 each)
//	l/c                        latest checkpoint note, with gathered cosignatures
//
// Entries are stored in runs, one badger key per run rather than one per
// entry. A run holds the entries of one committed batch that fall in one
// entry bundle (tlog-tiles: 256 entries, bundle N holding indices
// [256N, 256N+256)), so a batch spanning bundle boundaries is split there.
// The key carries the index of the run's first entry; the value is the
// run's entries in the tlog-tiles entry-bundle encoding (each entry as a
// big-endian uint16 length followed by its bytes). Runs of one bundle are
// therefore contiguous key ranges whose values concatenate to the bundle,
// every bundle starts a run, and entry i lives in the run with the greatest
// key not above i.
//
// One badger transaction writes a batch's runs, the tiles it changed, the new state and the checkpoint over it, so on disk
// they always agree.
var (
	pfxRun   = append(bytes.Clone(kv.PrefixLog), "b/"...)
	pfxLeaf  = append(bytes.Clone(kv.PrefixLog), "h/"...) // the per-entry index of earlier versions
	pfxTile  = append(bytes.Clone(kv.PrefixLog), "t/"...)
	keyState = append(bytes.Clone(kv.PrefixLog), 's')
	keyCP    = append(bytes.Clone(kv.PrefixLog), 'c')
)

const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	hashSize   = 32
)

func runKey(first uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(pfxRun), first)
}

func tileKey(level, index uint64) []byte {
	k := append(bytes.Clone(pfxTile), byte(level))
	return binary.BigEndian.AppendUint64(k, index)
}

// readTile returns the stored hashes of tile (level, index), or nil.
func readTile(txn *badger.Txn, level, index uint64) ([]byte, error) {
	it, err := txn.Get(tileKey(level, index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// writeRuns stores entries, the first of which gets index start, as runs:
// one key per run, runs split at entry-bundle boundaries.
func writeRuns(txn *badger.Txn, start uint64, entries []*appendReq) error {
	for len(entries) > 0 {
		n := min(uint64(len(entries)), tileWidth-start%tileWidth)
		size := 0
		for _, r := range entries[:n] {
			size += 2 + len(r.entry)
		}
		v := make([]byte, 0, size)
		for _, r := range entries[:n] {
			v = binary.BigEndian.AppendUint16(v, uint16(len(r.entry)))
			v = append(v, r.entry...)
		}
		if err := txn.Set(runKey(start), v); err != nil {
			return fmt.Errorf("write entries [%d, %d): %w", start, start+n, err)
		}
		start += n
		entries = entries[n:]
	}
	return nil
}

// runStart returns the first index of the run holding entry i: the greatest
// run key not above i. Bundle starts always begin a run.
func runStart(txn *badger.Txn, i uint64) (uint64, error) {
	if i%tileWidth == 0 {
		return i, nil
	}
	io := badger.DefaultIteratorOptions
	io.PrefetchValues = false
	io.Reverse = true
	io.Prefix = pfxRun
	it := txn.NewIterator(io)
	defer it.Close()
	it.Seek(runKey(i))
	if !it.Valid() {
		return 0, fmt.Errorf("%w: no entry run at or below index %d", ErrCorrupt, i)
	}
	k := it.Item().Key()
	s := binary.BigEndian.Uint64(k[len(pfxRun):])
	if s/tileWidth != i/tileWidth {
		return 0, fmt.Errorf("%w: entry %d: nearest run starts at %d, in another bundle", ErrCorrupt, i, s)
	}
	return s, nil
}

// decodeRun calls fn for each entry of run v, whose first index is first,
// with index in [from, to). It returns the index after the run's last entry.
func decodeRun(v []byte, first, from, to uint64, fn func(i uint64, e []byte) error) (uint64, error) {
	i := first
	for p := 0; p < len(v); i++ {
		if len(v)-p < 2 {
			return 0, fmt.Errorf("%w: entry run %d truncated at entry %d", ErrCorrupt, first, i)
		}
		n := int(binary.BigEndian.Uint16(v[p:]))
		p += 2
		if len(v)-p < n {
			return 0, fmt.Errorf("%w: entry run %d truncated at entry %d", ErrCorrupt, first, i)
		}
		if i >= from && i < to {
			if err := fn(i, v[p:p+n:p+n]); err != nil {
				return 0, err
			}
		}
		p += n
	}
	return i, nil
}

// scanEntries calls fn for each stored entry with index in [from, to), in
// order. The slice passed to fn is valid only during the call. Stored runs
// must be contiguous over the range; a gap is ErrCorrupt.
func scanEntries(txn *badger.Txn, from, to uint64, fn func(i uint64, v []byte) error) error {
	if from >= to {
		return nil
	}
	first, err := runStart(txn, from)
	if err != nil {
		return err
	}
	io := badger.DefaultIteratorOptions
	io.Prefix = pfxRun
	io.PrefetchSize = 4
	if to-from <= tileWidth {
		io.PrefetchValues = false
	}
	it := txn.NewIterator(io)
	defer it.Close()
	next := first
	for it.Seek(runKey(first)); it.Valid() && next < to; it.Next() {
		k := it.Item().Key()
		s := binary.BigEndian.Uint64(k[len(pfxRun):])
		if s != next {
			return fmt.Errorf("%w: entry run at %d, expected one at %d", ErrCorrupt, s, next)
		}
		if err := it.Item().Value(func(v []byte) error {
			next, err = decodeRun(v, s, from, to, fn)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// scanCheckedEntries is scanEntries with every entry checked against its
// leaf hash in the level-0 tile: an entry whose bytes no longer hash to the
// tile (a flipped bit in the database) is ErrCorrupt naming its index, and
// fn is never called with it. The range must be committed in txn's
// snapshot.
func scanCheckedEntries(txn *badger.Txn, from, to uint64, fn func(i uint64, v []byte) error) error {
	var tile []byte
	tileN := ^uint64(0)
	return scanEntries(txn, from, to, func(i uint64, v []byte) error {
		if n := i / tileWidth; n != tileN {
			t, err := readTile(txn, 0, n)
			if err != nil {
				return err
			}
			tile, tileN = t, n
		}
		o := (i % tileWidth) * hashSize
		if uint64(len(tile)) < o+hashSize {
			return fmt.Errorf("%w: level-0 tile %d holds %d hashes, entry %d needs more", ErrCorrupt, tileN, len(tile)/hashSize, i)
		}
		if !bytes.Equal(LeafHash(v), tile[o:o+hashSize]) {
			return &CorruptEntryError{Index: i}
		}
		return fn(i, v)
	})
}

// checkFullTile checks a full tile t of (level, index) against the hash
// of its subtree stored in the tile above, when the tree has one: a tile
// whose bytes changed under the log is ErrCorrupt naming it. Partial tiles
// and full tiles whose parent is not yet stored are returned unchecked;
// the checkpoint's root still covers them for any verifier.
func (l *Log) checkFullTile(level, index uint64, t []byte) error {
	if uint64(len(t)) != tileWidth*hashSize || level >= 7 || l.Size()>>((level+1)*tileHeight) <= index {
		return nil
	}
	var parent []byte
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		parent, err = readTile(txn, level+1, index/tileWidth)
		return err
	})
	if err != nil {
		return err
	}
	o := (index % tileWidth) * hashSize
	if uint64(len(parent)) < o+hashSize {
		return fmt.Errorf("%w: tile %d/%d holds %d hashes, its child %d/%d needs more", ErrCorrupt, level+1, index/tileWidth, len(parent)/hashSize, level, index)
	}
	if !bytes.Equal(subtreeRoot(t), parent[o:o+hashSize]) {
		return fmt.Errorf("%w: tile %d/%d does not hash to its entry in tile %d/%d", ErrCorrupt, level, index, level+1, index/tileWidth)
	}
	return nil
}

// subtreeRoot returns the RFC 6962 root of a full tile's 256 hashes.
func subtreeRoot(t []byte) []byte {
	hs := make([][]byte, 0, tileWidth)
	for p := 0; p < len(t); p += hashSize {
		hs = append(hs, t[p:p+hashSize])
	}
	for len(hs) > 1 {
		for i := 0; i < len(hs)/2; i++ {
			hs[i] = rfc6962.DefaultHasher.HashChildren(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0]
}

func encodeState(size uint64, hashes [][]byte) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(hashes)*hashSize), size)
	for _, h := range hashes {
		b = append(b, h...)
	}
	return b
}

func decodeState(b []byte) (uint64, [][]byte, error) {
	if len(b) < 8 || (len(b)-8)%hashSize != 0 {
		return 0, nil, fmt.Errorf("%w: tree state record of %d bytes", ErrCorrupt, len(b))
	}
	size := binary.BigEndian.Uint64(b)
	var hs [][]byte
	for p := 8; p < len(b); p += hashSize {
		hs = append(hs, bytes.Clone(b[p:p+hashSize]))
	}
	return size, hs, nil
}

// recover loads the tree state, the right-edge tiles and the checkpoint.
func (l *Log) recover() error {
	var size uint64
	var hashes [][]byte
	var cpNote []byte
	err := l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyState)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			if size, hashes, err = decodeState(v); err != nil {
				return err
			}
		}
		for level := uint64(0); level < 8 && size>>(level*tileHeight) > 0; level++ {
			n := size >> (level * tileHeight)
			w := n % tileWidth
			if w == 0 {
				continue
			}
			t, err := readTile(txn, level, n/tileWidth)
			if err != nil {
				return err
			}
			if uint64(len(t)) != w*hashSize {
				return fmt.Errorf("%w: tile %d/%d holds %d bytes, want %d at size %d", ErrCorrupt, level, n/tileWidth, len(t), w*hashSize, size)
			}
			l.edge[level] = t
		}
		if it, err := txn.Get(keyCP); err == nil {
			if cpNote, err = it.ValueCopy(nil); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover log state: %w", err)
	}
	rng, err := rf.NewRange(0, size, hashes)
	if err != nil {
		return fmt.Errorf("%w: compact range: %v", ErrCorrupt, err)
	}
	l.rng = rng
	root, err := l.root(rng)
	if err != nil {
		return err
	}
	if cpNote != nil {
		cp, err := parseOwnCheckpoint(cpNote, l.origin)
		if err != nil {
			return fmt.Errorf("%w: stored checkpoint: %v", ErrCorrupt, err)
		}
		switch {
		case cp.Size > size:
			return fmt.Errorf("%w: checkpoint size %d beyond tree size %d", ErrCorrupt, cp.Size, size)
		case cp.Size == size && !bytes.Equal(cp.Hash, root):
			return fmt.Errorf("%w: checkpoint root differs from tree root at size %d", ErrCorrupt, size)
		case cp.Size == size:
			l.cur.Store(&cp)
			return nil
		}
	}
	// No checkpoint yet, or one older than the tree: sign the tree as it is.
	cp, err := l.sign(size, root)
	if err != nil {
		return err
	}
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(keyCP, cp.Note) }); err != nil {
		return err
	}
	if err := l.db.Sync(); err != nil {
		return err
	}
	l.cur.Store(&cp)
	return nil
}

func (l *Log) root(rng *compact.Range) ([]byte, error) {
	if rng.End() == 0 {
		return l.hasher.EmptyRoot(), nil
	}
	return rng.GetRootHash(nil)
}
