package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// shrinkIndex makes index runs small (level 0: 8 entries, fanout 4, so
// level 2 covers 128) for the duration of a test.
func shrinkIndex(t *testing.T) {
	l0, f, m := runLevel0, runFanout, maxRunLevel
	runLevel0, runFanout, maxRunLevel = 8, 4, 2
	t.Cleanup(func() { runLevel0, runFanout, maxRunLevel = l0, f, m })
}

// appendN commits entries [from, to) of entryFn in batches of batch,
// through the sequencer.
func appendN(t *testing.T, l *Log, entry func(i uint64) []byte, n uint64) {
	t.Helper()
	ctx := context.Background()
	for i := l.Size(); i < n; i++ {
		if _, err := l.Append(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// indexRuns lists the stored index runs as "level/first" strings.
func indexRuns(t *testing.T, db *badger.DB) []string {
	var runs []string
	err := db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = pfxIndexRun
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(pfxIndexRun):]
			runs = append(runs, fmt.Sprintf("%d/%d", k[0], binary.BigEndian.Uint64(k[1:])))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestLeafIndexRuns(t *testing.T) {
	shrinkIndex(t)
	l, db, _ := newTestLog(t, Options{})
	// Entry i is "e<i mod 150>": every entry from 150 on repeats an
	// earlier one, so lookups must find the first occurrence.
	entry := func(i uint64) []byte { return fmt.Appendf(nil, "e%d", i%150) }
	appendN(t, l, entry, 300)
	ctx := context.Background()
	check := func(stage string, size uint64) {
		t.Helper()
		for _, i := range []uint64{0, 7, 8, 31, 32, 127, 128, 135, 149} {
			if i >= size {
				continue
			}
			got, _, err := l.InclusionProofByLeafHash(ctx, LeafHash(entry(i)), size)
			if err != nil || got != i {
				t.Fatalf("%s: lookup of entry %d in size %d = %d, %v", stage, i, size, got, err)
			}
		}
		if _, _, err := l.InclusionProofByLeafHash(ctx, LeafHash([]byte("absent")), size); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: lookup of an absent entry: %v, want ErrNotFound", stage, err)
		}
	}
	// Before the indexer ran (or whatever it did meanwhile), lookups are
	// right: they scan the tiles past the watermark.
	check("unindexed", 300)
	check("unindexed", 140)
	if err := l.indexUpTo(l.Size()); err != nil {
		t.Fatal(err)
	}
	if w := l.indexed.Load(); w != 296 {
		t.Fatalf("watermark %d, want 296 (the last whole level-0 run)", w)
	}
	// Runs: level 2 [0,128) [128,256); level 1 [256,288); level 0
	// [288,296).
	want := []string{"0/288", "1/256", "2/0", "2/128"}
	if got := indexRuns(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	check("indexed", 300)
	check("indexed", 140)

	// Reopen: the watermark is kept, lookups still right, indexing goes on.
	l.Close()
	l2, err := Open(db, Options{Signer: l.opts.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if w := l2.indexed.Load(); w != 296 {
		t.Fatalf("watermark after reopen %d, want 296", w)
	}
	l = l2
	check("reopened", 300)
	appendN(t, l, entry, 520)
	if err := l.indexUpTo(l.Size()); err != nil {
		t.Fatal(err)
	}
	want = []string{"0/512", "2/0", "2/128", "2/256", "2/384"}
	if got := indexRuns(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("runs after 520 entries %v, want %v", got, want)
	}
	check("grown", 520)
}

// TestLeafIndexPrefixCollision plants a record whose 8-byte prefix matches
// a hash but whose entry has another hash: the lookup must confirm against
// the tile and skip it.
func TestLeafIndexPrefixCollision(t *testing.T) {
	shrinkIndex(t)
	l, db, _ := newTestLog(t, Options{})
	entry := func(i uint64) []byte { return fmt.Appendf(nil, "entry %d", i) }
	appendN(t, l, entry, 16)
	if err := l.indexUpTo(16); err != nil {
		t.Fatal(err)
	}
	target := LeafHash(entry(12))
	err := db.Update(func(txn *badger.Txn) error {
		k := indexRunKey(0, 0)
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		rs, err := decodeRecs(v, nil)
		if err != nil {
			return err
		}
		// Entry 3's record now claims entry 12's prefix.
		for i := range rs {
			if rs[i].index == 3 {
				rs[i].prefix = binary.BigEndian.Uint64(target)
			}
		}
		return txn.Set(k, encodeRecs(rs))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := l.InclusionProofByLeafHash(context.Background(), target, 16)
	if err != nil || got != 12 {
		t.Fatalf("lookup = %d, %v; want 12", got, err)
	}
}

// TestLeafIndexMigration opens a log that has per-entry keys of the old
// index and no watermark: the old keys are dropped and the runs built.
func TestLeafIndexMigration(t *testing.T) {
	shrinkIndex(t)
	l, db, _ := newTestLog(t, Options{})
	entry := func(i uint64) []byte { return fmt.Appendf(nil, "entry %d", i) }
	appendN(t, l, entry, 20)
	l.Close()
	old := append(bytes.Clone(pfxLeaf), LeafHash(entry(5))...)
	old = binary.BigEndian.AppendUint64(old, 5)
	if err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(keyIndexed); err != nil {
			return err
		}
		return txn.Set(old, nil)
	}); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(db, Options{Signer: l.opts.Signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.hasOldIndex() {
		t.Fatal("old per-entry index keys left after Open")
	}
	if err := l2.indexUpTo(l2.Size()); err != nil {
		t.Fatal(err)
	}
	if w := l2.indexed.Load(); w != 16 {
		t.Fatalf("watermark %d, want 16", w)
	}
	got, _, err := l2.InclusionProofByLeafHash(context.Background(), LeafHash(entry(5)), 0)
	if err != nil || got != 5 {
		t.Fatalf("lookup = %d, %v; want 5", got, err)
	}
}

// TestLeafIndexBadWatermark: a watermark beyond the tree is corruption.
func TestLeafIndexBadWatermark(t *testing.T) {
	l, db, _ := newTestLog(t, Options{})
	l.Close()
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set(keyIndexed, binary.BigEndian.AppendUint64(nil, 1<<20))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db, Options{Signer: l.opts.Signer}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}
