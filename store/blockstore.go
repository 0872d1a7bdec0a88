package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentix/agentix-store/internal/kv"
	"github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// Blockstore implements boxo's blockstore.Blockstore directly on badger.
// Blocks are keyed by multihash under kv.PrefixBlocks; the codec of the CID
// is not stored, so AllKeysChan yields CIDv1 raw CIDs.
type Blockstore struct {
	db   *badger.DB
	opts Options
}

// CorruptBlockError reports a block whose bytes do not hash to its CID.
type CorruptBlockError struct {
	Cid cid.Cid
}

func (e *CorruptBlockError) Error() string {
	return fmt.Sprintf("block %s is corrupt: its bytes do not hash to its CID", e.Cid)
}

// ErrCorrupt matches every *CorruptBlockError with errors.Is.
var ErrCorrupt = errors.New("corrupt block")

func (e *CorruptBlockError) Is(target error) bool { return target == ErrCorrupt }

// NewBlockstore returns a Blockstore on db.
func NewBlockstore(db *badger.DB, opts Options) *Blockstore {
	return &Blockstore{db: db, opts: opts}
}

func blockKey(h mh.Multihash) []byte {
	k := make([]byte, 0, len(kv.PrefixBlocks)+len(h))
	k = append(k, kv.PrefixBlocks...)
	return append(k, h...)
}

func notFound(c cid.Cid) error {
	return fmt.Errorf("%w: %s: %w", ErrNotFound, c, ipld.ErrNotFound{Cid: c})
}

// Get returns the block, re-hashing it unless Options.NoVerifyOnRead is set.
func (b *Blockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if !c.Defined() {
		return nil, notFound(c)
	}
	var data []byte
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blockKey(c.Hash()))
		if err != nil {
			return err
		}
		data, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFound(c)
	}
	if err != nil {
		return nil, fmt.Errorf("get block %s: %w", c, err)
	}
	if !b.opts.NoVerifyOnRead {
		got, err := c.Prefix().Sum(data)
		if err != nil {
			return nil, fmt.Errorf("hash block %s: %w", c, err)
		}
		if !got.Equals(c) && string(got.Hash()) != string(c.Hash()) {
			return nil, &CorruptBlockError{Cid: c}
		}
	}
	return blocks.NewBlockWithCid(data, c)
}

// Has reports whether the block is stored.
func (b *Blockstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	err := b.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blockKey(c.Hash()))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// GetSize returns the block's size without reading it.
func (b *Blockstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	size := -1
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blockKey(c.Hash()))
		if err != nil {
			return err
		}
		size = int(it.ValueSize())
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return -1, notFound(c)
	}
	return size, err
}

// Put stores one block.
func (b *Blockstore) Put(ctx context.Context, blk blocks.Block) error {
	return b.PutMany(ctx, []blocks.Block{blk})
}

// PutMany stores blocks in one badger write batch.
func (b *Blockstore) PutMany(ctx context.Context, blks []blocks.Block) error {
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, blk := range blks {
		if err := wb.Set(blockKey(blk.Cid().Hash()), blk.RawData()); err != nil {
			return fmt.Errorf("put block %s: %w", blk.Cid(), err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("put blocks: %w", err)
	}
	if b.opts.SyncWrites {
		return b.db.Sync()
	}
	return nil
}

// DeleteBlock removes a block; deleting a missing block is not an error.
func (b *Blockstore) DeleteBlock(ctx context.Context, c cid.Cid) error {
	return b.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(blockKey(c.Hash()))
	})
}

// AllKeysChan lists every stored block as a CIDv1 raw CID.
func (b *Blockstore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch := make(chan cid.Cid, 64)
	go func() {
		defer close(ch)
		_ = b.db.View(func(txn *badger.Txn) error {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false
			opt.Prefix = kv.PrefixBlocks
			it := txn.NewIterator(opt)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				h := it.Item().KeyCopy(nil)[len(kv.PrefixBlocks):]
				select {
				case ch <- cid.NewCidV1(cid.Raw, h):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	return ch, nil
}

// HashOnRead is accepted for interface compatibility; see Options.
func (b *Blockstore) HashOnRead(enabled bool) { b.opts.NoVerifyOnRead = !enabled }
