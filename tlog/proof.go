package tlog

import (
	"bytes"
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// InclusionProof returns the RFC 6962 inclusion proof of entry index in the
// tree of the given size. Size 0 means the latest checkpoint's size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	size, err := l.checkSize(size)
	if err != nil {
		return nil, err
	}
	if index >= size {
		return nil, fmt.Errorf("%w: index %d in a tree of size %d", ErrBadRange, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	return l.fetchProof(ctx, nodes)
}

// InclusionProofByLeafHash finds the first entry whose RFC 6962 leaf hash
// is leafHash within the tree of the given size (0: latest) and returns its
// index and inclusion proof. It returns ErrNotFound if there is none.
func (l *Log) InclusionProofByLeafHash(ctx context.Context, leafHash []byte, size uint64) (uint64, [][]byte, error) {
	size, err := l.checkSize(size)
	if err != nil {
		return 0, nil, err
	}
	if len(leafHash) != hashSize {
		return 0, nil, fmt.Errorf("%w: leaf hash of %d bytes, want %d", ErrBadRange, len(leafHash), hashSize)
	}
	index, found, err := l.findLeaf(ctx, leafHash, size)
	if err != nil {
		return 0, nil, err
	}
	if !found {
		return 0, nil, fmt.Errorf("%w: no entry with leaf hash %x in the first %d", ErrNotFound, leafHash, size)
	}
	p, err := l.InclusionProof(ctx, index, size)
	return index, p, err
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of sizes old and new (new 0: latest). old 0 gives an empty proof.
func (l *Log) ConsistencyProof(ctx context.Context, old, new uint64) ([][]byte, error) {
	new, err := l.checkSize(new)
	if err != nil {
		return nil, err
	}
	if old > new {
		return nil, fmt.Errorf("%w: old size %d > new size %d", ErrBadRange, old, new)
	}
	if old == 0 || old == new {
		return [][]byte{}, nil
	}
	nodes, err := proof.Consistency(old, new)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	return l.fetchProof(ctx, nodes)
}

// RootAt returns the root hash of the tree of the given size (0: latest).
func (l *Log) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	size, err := l.checkSize(size)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return l.hasher.EmptyRoot(), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	r := newNodeReader(l)
	hs := make([][]byte, len(ids))
	err = l.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			h, err := r.node(txn, id)
			if err != nil {
				return err
			}
			hs[i] = h
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	rng, err := rf.NewRange(0, size, hs)
	if err != nil {
		return nil, err
	}
	return rng.GetRootHash(nil)
}

func (l *Log) checkSize(size uint64) (uint64, error) {
	cur := l.Size()
	if size == 0 {
		return cur, nil
	}
	if size > cur {
		return 0, fmt.Errorf("%w: size %d beyond the latest checkpoint's %d", ErrBadRange, size, cur)
	}
	return size, nil
}

func (l *Log) fetchProof(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	r := newNodeReader(l)
	hs := make([][]byte, 0, len(nodes.IDs))
	err := l.db.View(func(txn *badger.Txn) error {
		for _, id := range nodes.IDs {
			h, err := r.node(txn, id)
			if err != nil {
				return err
			}
			hs = append(hs, h)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hs, l.hasher.HashChildren)
}

// nodeReader reads perfect-subtree hashes out of hash tiles. A node at tree
// level k·8 is stored in a level-k tile; a node between tile levels is
// recomputed from the 2^(level mod 8) tile entries below it.
type nodeReader struct {
	l     *Log
	tiles map[[2]uint64][]byte
}

func newNodeReader(l *Log) *nodeReader {
	return &nodeReader{l: l, tiles: map[[2]uint64][]byte{}}
}

func (r *nodeReader) node(txn *badger.Txn, id compact.NodeID) ([]byte, error) {
	level := uint64(id.Level / tileHeight)
	sub := id.Level % tileHeight
	first := id.Index << sub
	ti := first / tileWidth
	k := [2]uint64{level, ti}
	t, ok := r.tiles[k]
	if !ok {
		var err error
		if t, err = readTile(txn, level, ti); err != nil {
			return nil, err
		}
		r.tiles[k] = t
	}
	lo, n := first%tileWidth, uint64(1)<<sub
	if (lo+n)*hashSize > uint64(len(t)) {
		return nil, fmt.Errorf("%w: node %d/%d not in tile %d/%d (%d hashes)", ErrCorrupt, id.Level, id.Index, level, ti, len(t)/hashSize)
	}
	hs := make([][]byte, n)
	for i := range hs {
		p := (lo + uint64(i)) * hashSize
		hs[i] = t[p : p+hashSize]
	}
	for len(hs) > 1 {
		next := make([][]byte, len(hs)/2)
		for i := range next {
			next[i] = r.l.hasher.HashChildren(hs[2*i], hs[2*i+1])
		}
		hs = next
	}
	return bytes.Clone(hs[0]), nil
}
