package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/agentix/agentix-store/internal/kv"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// Storage layout, all under kv.PrefixLog ("l/"):
//
//	l/e/<index:8>            entry bytes
//	l/h/<leafhash:32><index:8> empty; finds entries by leaf hash
//	l/t/<level:1><index:8>   hash tile: concatenated 32-byte hashes, 1..256 of them
//	l/s                      tree state: size:8 || compact range hashes (32 each)
//	l/c                      latest checkpoint note, with gathered cosignatures
//
// One badger transaction writes a batch's entries, the tiles it changed, the
// new state and the checkpoint over it, so on disk they always agree.
var (
	pfxEntry = append(bytes.Clone(kv.PrefixLog), "e/"...)
	pfxLeaf  = append(bytes.Clone(kv.PrefixLog), "h/"...)
	pfxTile  = append(bytes.Clone(kv.PrefixLog), "t/"...)
	keyState = append(bytes.Clone(kv.PrefixLog), 's')
	keyCP    = append(bytes.Clone(kv.PrefixLog), 'c')
)

const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	hashSize   = 32
)

func entryKey(i uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(pfxEntry), i)
}

func leafKey(h []byte, i uint64) []byte {
	k := append(bytes.Clone(pfxLeaf), h...)
	return binary.BigEndian.AppendUint64(k, i)
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

// scanEntries calls fn for each stored entry with index in [from, to).
func scanEntries(txn *badger.Txn, from, to uint64, fn func(i uint64, v []byte) error) error {
	if from >= to {
		return nil
	}
	io := badger.DefaultIteratorOptions
	io.Prefix = pfxEntry
	io.PrefetchSize = min(int(to-from), 256)
	it := txn.NewIterator(io)
	defer it.Close()
	for it.Seek(entryKey(from)); it.Valid(); it.Next() {
		k := it.Item().Key()
		i := binary.BigEndian.Uint64(k[len(pfxEntry):])
		if i >= to {
			break
		}
		if err := it.Item().Value(func(v []byte) error { return fn(i, v) }); err != nil {
			return err
		}
	}
	return nil
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
