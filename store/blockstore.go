package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	pool "github.com/libp2p/go-buffer-pool"
	mh "github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

var (
	_ blockstore.Blockstore           = (*Blockstore)(nil)
	_ blockstore.Viewer               = (*Blockstore)(nil)
	_ blockstore.AllKeysChanWithErrer = (*Blockstore)(nil)
)

// Blockstore implements boxo's blockstore.Blockstore on badger and pack
// files.
//
// Blocks are keyed by multihash under kv.PrefixBlocks. A block smaller than
// Options.PackThreshold is stored inline: the value is the block's bytes,
// nothing else. A larger block is appended to a pack file and the value is
// its location (see pack.go), tagged with badger's user metadata byte. The
// codec of the CID is not stored, so two CIDs with the same multihash name the
// same stored bytes, and AllKeysChan yields CIDv1 raw CIDs (as boxo documents
// for multihash-keyed stores).
//
// Identity-hash CIDs are never stored: their bytes are the digest, so Has is
// true and Get returns the digest for any of them.
//
// Reads verify: unless Options.NoVerifyOnRead is set, Get and View re-hash the
// bytes (inline or read from the pack) and return a *CorruptBlockError naming
// the CID instead of bytes that do not hash to it. Writes trust the caller's
// CIDs (CAR import verifies before it writes; UnixFS add computes the CIDs
// itself).
type Blockstore struct {
	db        *badger.DB
	opts      Options
	packs     *packs // nil: every block inline
	threshold int
	owner     *Store // the Store whose GC this blockstore is under (PutHeld); nil if none
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

func (e *CorruptBlockError) Is(target error) bool {
	return target == ErrCorrupt || target == blockstore.ErrHashMismatch
}

// NewBlockstore returns a Blockstore on db, with its pack files in
// kv.PacksDir(db) (none for an in-memory database or a negative
// Options.PackThreshold). The caller keeps ownership of db and closes it
// after the Blockstore; Close releases the pack files' handles (an unclosed
// Blockstore's handles are released when it is garbage collected).
func NewBlockstore(db *badger.DB, opts Options) *Blockstore {
	b := &Blockstore{db: db, opts: opts, threshold: opts.PackThreshold}
	if b.threshold == 0 {
		b.threshold = DefaultPackThreshold
	}
	if dir := kv.PacksDir(db); dir != "" && b.threshold > 0 {
		b.packs = openPacks(dir, db.Opts().ReadOnly, opts.NoDirectIO)
	}
	return b
}

// Close syncs the pack being appended to and closes every pack file. It does
// not close the database. Neither the Blockstore nor another one opened on
// the same database while it was open may be used afterwards (they share
// their pack files).
func (b *Blockstore) Close() error {
	if b.packs == nil {
		return nil
	}
	return b.packs.close()
}

func blockKey(h mh.Multihash) []byte {
	k := make([]byte, 0, len(kv.PrefixBlocks)+len(h))
	k = append(k, kv.PrefixBlocks...)
	return append(k, h...)
}

func notFound(c cid.Cid) error {
	return fmt.Errorf("%w: %s: %w", ErrNotFound, c, ipld.ErrNotFound{Cid: c})
}

// identityDigest returns the inline bytes of an identity-hash CID.
func identityDigest(c cid.Cid) ([]byte, bool) {
	if c.Prefix().MhType != mh.IDENTITY {
		return nil, false
	}
	dh, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, false
	}
	return dh.Digest, true
}

// verify checks that data hashes to c.
func verify(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("hash block %s: %w", c, err)
	}
	if string(got.Hash()) != string(c.Hash()) {
		return &CorruptBlockError{Cid: c}
	}
	return nil
}

// View calls fn with the block's bytes, verified unless
// Options.NoVerifyOnRead is set. fn must not keep or modify the slice.
func (b *Blockstore) View(ctx context.Context, c cid.Cid, fn func([]byte) error) error {
	return b.read(c, false, fn)
}

// read looks c up and calls fn with its verified bytes. With own, the slice
// given to fn is the caller's to keep; otherwise it is valid during fn only.
func (b *Blockstore) read(c cid.Cid, own bool, fn func([]byte) error) error {
	if !c.Defined() {
		return notFound(c)
	}
	if d, ok := identityDigest(c); ok {
		if own {
			d = append([]byte(nil), d...)
		}
		return fn(d)
	}
	var (
		verr   error
		ref    packRef
		packed bool
	)
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blockKey(c.Hash()))
		if err != nil {
			return err
		}
		if it.UserMeta() == metaPackRef {
			packed = true
			return it.Value(func(v []byte) (err error) {
				ref, err = decodePackRef(v)
				return err
			})
		}
		return it.Value(func(v []byte) error {
			if !b.opts.NoVerifyOnRead {
				if err := verify(c, v); err != nil {
					return err
				}
			}
			if own {
				v = append(make([]byte, 0, len(v)), v...)
			}
			verr = fn(v)
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return notFound(c)
	}
	if err == nil && packed {
		err = b.readPacked(c, ref, own, fn)
		if err == nil {
			return nil
		}
	}
	if err != nil {
		var ce *CorruptBlockError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("read block %s: %w", c, err)
	}
	return verr
}

// readPacked reads c from its pack, verifies it and calls fn. fn's error is
// returned as is.
func (b *Blockstore) readPacked(c cid.Cid, ref packRef, own bool, fn func([]byte) error) error {
	if b.packs == nil {
		return fmt.Errorf("pack %d: block store opened without pack files", ref.id)
	}
	var buf []byte
	if own {
		buf = make([]byte, ref.n)
	} else {
		buf = pool.Get(int(ref.n))
		defer pool.Put(buf)
	}
	if err := b.packs.read(ref, buf); err != nil {
		if errors.Is(err, errPackShort) {
			// The index says the bytes are there and they are not:
			// as good as bytes that do not hash to the CID.
			return &CorruptBlockError{Cid: c}
		}
		return fmt.Errorf("pack %d offset %d: %w", ref.id, ref.off, err)
	}
	if !b.opts.NoVerifyOnRead {
		if err := verify(c, buf); err != nil {
			return err
		}
	}
	return fn(buf)
}

// Get returns the block, re-hashing it unless Options.NoVerifyOnRead is set.
func (b *Blockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	var data []byte
	err := b.read(c, true, func(v []byte) error {
		data = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// Has reports whether the block is stored. It reads no block bytes.
func (b *Blockstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if !c.Defined() {
		return false, nil
	}
	if _, ok := identityDigest(c); ok {
		return true, nil
	}
	err := b.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blockKey(c.Hash()))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("has block %s: %w", c, err)
	}
	return true, nil
}

// GetSize returns the block's size in bytes without reading the block.
func (b *Blockstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if !c.Defined() {
		return -1, notFound(c)
	}
	if d, ok := identityDigest(c); ok {
		return len(d), nil
	}
	size := -1
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blockKey(c.Hash()))
		if err != nil {
			return err
		}
		n, err := blockSize(it)
		size = int(n)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return -1, notFound(c)
	}
	if err != nil {
		return -1, fmt.Errorf("size of block %s: %w", c, err)
	}
	return size, nil
}

// blockSize returns the length of the block of an index entry: the length
// recorded in its pack reference, or the length of its inline value.
func blockSize(it *badger.Item) (int64, error) {
	if it.UserMeta() == metaPackRef {
		var ref packRef
		err := it.Value(func(v []byte) (err error) {
			ref, err = decodePackRef(v)
			return err
		})
		return ref.n, err
	}
	return valueSize(it)
}

// valueSize returns the exact length of an item's value without reading the
// value log when it can.
//
// badger's Item.ValueSize is exact for values kept in the LSM tree and, for
// values in the value log, assumes an entry header of 6 bytes: 2 meta bytes
// plus one-byte varints for the key length and expiry and a two-byte varint
// for the value length. Block keys are short (key+timestamp < 128 bytes) and
// never expire, so the only error is the value-length varint being longer than
// two bytes, which this function corrects. Values below 16 KiB are exact
// either way. Longer keys fall back to reading the value's length.
// TestGetSizeExact pins this against the real database across the varint
// boundaries.
func valueSize(it *badger.Item) (int64, error) {
	if len(it.Key())+8 >= 128 {
		var n int64
		err := it.Value(func(v []byte) error { n = int64(len(v)); return nil })
		return n, err
	}
	approx := it.ValueSize()
	if approx < 1<<14 {
		return approx, nil
	}
	for extra := int64(0); extra <= 8; extra++ {
		n := approx - extra
		if n >= 0 && int64(varint.UvarintSize(uint64(n))) == 2+extra {
			return n, nil
		}
	}
	return approx, nil
}

// Put stores one block.
func (b *Blockstore) Put(ctx context.Context, blk blocks.Block) error {
	return b.PutMany(ctx, []blocks.Block{blk})
}

// PutMany stores blocks: those of at least Options.PackThreshold bytes are
// appended to a pack file first, then every block's index entry (or inline
// value) is written in one badger write batch. Blocks already stored with the
// same length are not rewritten (their bytes are verified on every read, and
// a corrupt copy can be replaced by DeleteBlock then Put). With
// Options.SyncWrites the pack is fdatasynced before the batch is written and
// the batch is synced before PutMany returns.
func (b *Blockstore) PutMany(ctx context.Context, blks []blocks.Block) error {
	return b.putMany(ctx, blks, false)
}

// putMany is PutMany; with anyLength it also skips blocks stored with
// another length (UnixFS add, whose CIDs are computed from the bytes).
func (b *Blockstore) putMany(ctx context.Context, blks []blocks.Block, anyLength bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	keys := make([][]byte, len(blks))
	skip := make([]bool, len(blks))
	var replaced []packRef // packed copies of another length, rewritten
	err := b.db.View(func(txn *badger.Txn) error {
		for i, blk := range blks {
			if _, ok := identityDigest(blk.Cid()); ok {
				skip[i] = true
				continue
			}
			keys[i] = blockKey(blk.Cid().Hash())
			it, err := txn.Get(keys[i])
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if anyLength {
				skip[i] = true
			} else if n, err := blockSize(it); err == nil && n == int64(len(blk.RawData())) {
				skip[i] = true
			} else if it.UserMeta() == metaPackRef {
				_ = it.Value(func(v []byte) error {
					if r, err := decodePackRef(v); err == nil {
						replaced = append(replaced, r)
					}
					return nil
				})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put blocks: %w", err)
	}
	if err := b.writeBatch(keys, blks, skip); err != nil {
		return err
	}
	// Free the space of packed copies that were replaced, once the new
	// entries are durable (best effort, like DeleteBlock).
	if len(replaced) > 0 && b.packs != nil {
		if err := b.db.Sync(); err != nil {
			return fmt.Errorf("put blocks: sync: %w", err)
		}
		for _, r := range replaced {
			_ = b.packs.punch(r)
		}
	}
	return nil
}

func (b *Blockstore) writeBatch(keys [][]byte, blks []blocks.Block, skip []bool) error {
	// Nothing is written below the free-space reserve (kv.Claim): badger
	// cannot report a full disk, it dies of it.
	var size int64
	for i, blk := range blks {
		if !skip[i] {
			size += int64(len(blk.RawData())+len(keys[i])) + packAlign
		}
	}
	if size == 0 {
		return nil
	}
	release, err := kv.Claim(b.db, size)
	if err != nil {
		return fmt.Errorf("put blocks: %w", err)
	}
	defer release()
	// Pack first: an index entry must never point to unwritten bytes.
	var (
		packed []int // indexes into blks
		data   [][]byte
		refs   []packRef
	)
	if b.packs != nil {
		for i, blk := range blks {
			if !skip[i] && len(blk.RawData()) >= b.threshold {
				packed = append(packed, i)
				data = append(data, blk.RawData())
			}
		}
	}
	if len(packed) > 0 {
		var err error
		if refs, err = b.packs.appendBlocks(data, b.opts.SyncWrites); err != nil {
			return fmt.Errorf("put blocks: %w", kv.NoSpace(b.db, err))
		}
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	n, p := 0, 0
	for i, blk := range blks {
		if skip[i] {
			continue
		}
		var err error
		if p < len(packed) && packed[p] == i {
			err = wb.SetEntry(badger.NewEntry(keys[i], refs[p].encode()).WithMeta(metaPackRef))
			p++
		} else {
			err = wb.Set(keys[i], blk.RawData())
		}
		if err != nil {
			return fmt.Errorf("put block %s: %w", blk.Cid(), err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("put blocks: %w", kv.NoSpace(b.db, err))
	}
	if b.opts.SyncWrites {
		if err := b.db.Sync(); err != nil {
			return fmt.Errorf("sync blocks: %w", kv.NoSpace(b.db, err))
		}
	}
	return nil
}

// DeleteBlock removes a block; deleting a missing block is not an error.
// It does not consult pins: use Store.GC to remove unpinned blocks safely.
// A packed block's index entry is deleted and synced before its space in the
// pack is freed (best effort), so a crash never leaves an entry pointing at
// a hole.
func (b *Blockstore) DeleteBlock(ctx context.Context, c cid.Cid) error {
	if _, ok := identityDigest(c); ok || !c.Defined() {
		return nil
	}
	var (
		ref    packRef
		packed bool
	)
	key := blockKey(c.Hash())
	err := b.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if it.UserMeta() == metaPackRef {
			if err := it.Value(func(v []byte) (err error) { ref, err = decodePackRef(v); return err }); err == nil {
				packed = true
			}
		}
		return txn.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete block %s: %w", c, err)
	}
	if packed && b.packs != nil {
		if err := b.db.Sync(); err != nil {
			return fmt.Errorf("delete block %s: sync: %w", c, err)
		}
		_ = b.packs.punch(ref) // best effort: the block is already gone
	}
	return nil
}

// AllKeysChan lists every stored block as a CIDv1 raw CID.
func (b *Blockstore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch, _, err := b.AllKeysChanWithErr(ctx)
	return ch, err
}

// AllKeysChanWithErr is AllKeysChan with a function that, once the channel
// is drained, reports whether the listing ended early (I/O error or ctx).
func (b *Blockstore) AllKeysChanWithErr(ctx context.Context) (<-chan cid.Cid, func() error, error) {
	ch := make(chan cid.Cid, 64)
	done := make(chan struct{})
	var ierr error
	go func() {
		defer close(done)
		defer close(ch)
		ierr = b.db.View(func(txn *badger.Txn) error {
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
	return ch, func() error { <-done; return ierr }, nil
}
