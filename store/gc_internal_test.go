package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentix/agentix-store/kv"
)

func openKV(t *testing.T) *badger.DB {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countPrefix(t *testing.T, db *badger.DB, prefix []byte) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchDeleter deletes n keys through one batchDeleter, flushed or
// not: every deletion of a full batch is written when the batch fills, the
// rest only by flush, and no other key is touched.
func TestBatchDeleter(t *testing.T) {
	cases := []struct {
		n      int
		flush  bool
		remain int
	}{
		{n: 0, flush: true},
		{n: 1, flush: true},
		{n: gcBatch - 1, flush: true},
		{n: gcBatch, flush: true},
		{n: gcBatch + 1, flush: true},
		{n: 2*gcBatch + 3, flush: true},
		{n: 1, remain: 1},
		{n: gcBatch, remain: 0},
		{n: gcBatch + 5, remain: 5},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d keys, flush %v", tc.n, tc.flush), func(t *testing.T) {
			db := openKV(t)
			wb := db.NewWriteBatch()
			for i := range tc.n {
				if err := wb.Set(fmt.Appendf(nil, "t/%08d", i), []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			if err := wb.Set([]byte("u/other"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := wb.Flush(); err != nil {
				t.Fatal(err)
			}
			d := newBatchDeleter(db)
			for i := range tc.n {
				if err := d.delete(fmt.Appendf(nil, "t/%08d", i)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.flush {
				if err := d.flush(); err != nil {
					t.Fatal(err)
				}
			}
			d.cancel()
			if got := countPrefix(t, db, []byte("t/")); got != tc.remain {
				t.Errorf("%d of %d keys remain, want %d", got, tc.n, tc.remain)
			}
			if got := countPrefix(t, db, []byte("u/")); got != 1 {
				t.Errorf("another key deleted: %d left of 1", got)
			}
		})
	}
}

// TestSweptKeepDrop checks what a sweep records for each index entry it
// keeps or drops: inline and packed blocks, and packed ones whose reference
// cannot be read.
func TestSweptKeepDrop(t *testing.T) {
	type entry struct {
		keep   bool
		packed bool
		value  []byte
	}
	ref := func(id uint32, off, n int64) []byte { return packRef{id: id, off: off, n: n}.encode() }
	cases := []struct {
		name    string
		entries []entry
		res     GCResult
		freed   int64 // the sizes drop returned
		live    map[uint32]int64
		badRef  bool
		punches []packRef
	}{
		{name: "inline kept", entries: []entry{{keep: true, value: []byte("abc")}}, res: GCResult{Kept: 1}, live: map[uint32]int64{}},
		{name: "packed kept: the pack is live to the block's aligned end",
			entries: []entry{{keep: true, packed: true, value: ref(3, 0, 70000)}, {keep: true, packed: true, value: ref(3, 81920, 10)}, {keep: true, packed: true, value: ref(4, 4096, 4096)}},
			res:     GCResult{Kept: 3}, live: map[uint32]int64{3: 81920 + packAlign, 4: 8192}},
		{name: "packed kept, reference unreadable", entries: []entry{{keep: true, packed: true, value: []byte("short")}},
			res: GCResult{Kept: 1}, live: map[uint32]int64{0: 0}, badRef: true},
		{name: "inline dropped: its value's size", entries: []entry{{value: []byte("abcde")}}, freed: 5, live: map[uint32]int64{}},
		{name: "packed dropped: its space is punched", entries: []entry{{packed: true, value: ref(2, 8192, 70000)}},
			freed: 70000, live: map[uint32]int64{}, punches: []packRef{{id: 2, off: 8192, n: 70000}}},
		{name: "packed dropped, reference unreadable: space unknown", entries: []entry{{packed: true, value: []byte("short")}},
			live: map[uint32]int64{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openKV(t)
			err := db.Update(func(txn *badger.Txn) error {
				for i, e := range tc.entries {
					en := badger.NewEntry(fmt.Appendf(nil, "t/%d", i), e.value)
					if e.packed {
						en = en.WithMeta(metaPackRef)
					}
					if err := txn.SetEntry(en); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sw := &swept{live: map[uint32]int64{}}
			var freed int64
			err = db.View(func(txn *badger.Txn) error {
				for i, e := range tc.entries {
					item, err := txn.Get(fmt.Appendf(nil, "t/%d", i))
					if err != nil {
						return err
					}
					if e.keep {
						sw.keep(item)
						continue
					}
					n, err := sw.drop(item)
					if err != nil {
						return err
					}
					freed += n
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if sw.res != tc.res || freed != tc.freed || sw.badRef != tc.badRef {
				t.Errorf("result %+v, freed %d, bad ref %v; want %+v, %d, %v", sw.res, freed, sw.badRef, tc.res, tc.freed, tc.badRef)
			}
			if fmt.Sprint(sw.live) != fmt.Sprint(tc.live) || !slices.Equal(sw.punches, tc.punches) {
				t.Errorf("live %v, punches %v; want %v, %v", sw.live, sw.punches, tc.live, tc.punches)
			}
		})
	}
}
