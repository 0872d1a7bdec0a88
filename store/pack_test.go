//go:build unix

package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
)

// packFiles returns the pack files of the store in dir.
func packFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// findInPacks returns the pack file and offset holding data.
func findInPacks(t testing.TB, dir string, data []byte) (string, int64) {
	t.Helper()
	for _, p := range packFiles(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, data); i >= 0 {
			return p, int64(i)
		}
	}
	t.Fatalf("%d bytes not found in any pack", len(data))
	return "", 0
}

// diskBytes is the space a file occupies on disk.
func diskBytes(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestPackPlacement checks which blocks go to packs, that both write modes
// read back, and that sizes and Stat stay logical.
func TestPackPlacement(t *testing.T) {
	for _, tc := range []struct {
		name      string
		o         store.Options
		wantPacks bool
	}{
		{"direct", store.Options{}, true},
		{"buffered fallback", store.Options{NoDirectIO: true}, true},
		{"sync writes", store.Options{SyncWrites: true}, true},
		{"threshold 4 KiB", store.Options{PackThreshold: 4 << 10}, true},
		{"packs off", store.Options{PackThreshold: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := stOpen(t, tc.o)
			ctx := context.Background()
			th := tc.o.PackThreshold
			if th == 0 {
				th = store.DefaultPackThreshold
			}
			sizes := []int{1, 1000, 4095, 4096, 4097, 64<<10 - 1, 64 << 10, 64<<10 + 1, 256 << 10, 1<<20 + 3, 2 << 20}
			var blks []blocks.Block
			var total int64
			for i, n := range sizes {
				blks = append(blks, stRaw(stRand(uint64(100+i), n)))
				total += int64(n)
			}
			e.put(blks...)
			check := func(when string) {
				t.Helper()
				for _, b := range blks {
					got, err := e.s.Blockstore().Get(ctx, b.Cid())
					if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
						t.Fatalf("%s: Get %d-byte block: %v", when, len(b.RawData()), err)
					}
					if n, err := e.s.Blockstore().GetSize(ctx, b.Cid()); err != nil || n != len(b.RawData()) {
						t.Fatalf("%s: GetSize = %d, %v; want %d", when, n, err, len(b.RawData()))
					}
				}
				if st := e.stat(); st.Blocks != len(blks) || st.Bytes != total {
					t.Fatalf("%s: Stat = %+v, want %d blocks of %d bytes", when, st, len(blks), total)
				}
			}
			check("fresh")
			e.reopen()
			check("after reopen")

			packs := packFiles(t, e.dir)
			if got := len(packs) > 0; got != tc.wantPacks {
				t.Fatalf("pack files %v, want some: %v", packs, tc.wantPacks)
			}
			if !tc.wantPacks {
				return
			}
			var packed int64
			for _, b := range blks {
				if n := len(b.RawData()); n >= th {
					p, off := findInPacks(t, e.dir, b.RawData())
					if off%4096 != 0 {
						t.Fatalf("%d-byte block at offset %d of %s, want 4096-aligned", n, off, p)
					}
					packed += (int64(n) + 4095) &^ 4095
				}
			}
			fi, err := os.Stat(packs[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(packs) != 1 || fi.Size() != packed {
				t.Fatalf("packs %v, size %d; want one pack of %d bytes (the large blocks, padded)", packs, fi.Size(), packed)
			}
		})
	}
}

func TestPacksNotUsedInMemory(t *testing.T) {
	db, err := kv.Open("", kv.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if d := kv.PacksDir(db); d != "" {
		t.Fatalf("PacksDir of an in-memory database = %q, want \"\"", d)
	}
	// Below badger's in-memory value limit, above the pack threshold.
	s := store.New(db, store.Options{PackThreshold: 512})
	b := stRaw(stRand(1, 600))
	if err := s.Blockstore().Put(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Blockstore().Get(context.Background(), b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
		t.Fatalf("Get from in-memory store: %v", err)
	}
}

// TestPackCorruption damages pack bytes behind the store's back: every read
// path must answer a *CorruptBlockError naming the block, never the bytes.
func TestPackCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, off int64, n int)
	}{
		{"one bit flipped", func(t *testing.T, path string, off int64, n int) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, off+int64(n)/2); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x10
			if _, err := f.WriteAt(b, off+int64(n)/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeroed (hole)", func(t *testing.T, path string, off int64, n int) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, n), off); err != nil {
				t.Fatal(err)
			}
		}},
		{"pack truncated", func(t *testing.T, path string, off int64, n int) {
			if err := os.Truncate(path, off+int64(n)/2); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		for _, o := range []store.Options{{}, {NoDirectIO: true}} {
			t.Run(tc.name+map[bool]string{false: "", true: " buffered"}[o.NoDirectIO], func(t *testing.T) {
				e := stOpen(t, o)
				ctx := context.Background()
				data := stRand(5, 3*262144)
				root, err := e.s.Add(ctx, bytes.NewReader(data), store.AddOptions{})
				if err != nil {
					t.Fatal(err)
				}
				leaf := stRaw(data[262144 : 2*262144]) // the middle leaf
				path, off := findInPacks(t, e.dir, leaf.RawData())
				tc.damage(t, path, off, len(leaf.RawData()))

				want := func(what string, err error) {
					t.Helper()
					var ce *store.CorruptBlockError
					if !errors.As(err, &ce) || !ce.Cid.Equals(leaf.Cid()) || !errors.Is(err, store.ErrCorrupt) {
						t.Fatalf("%s: err = %v, want *CorruptBlockError for %s", what, err, leaf.Cid())
					}
					if !strings.Contains(err.Error(), leaf.Cid().String()) {
						t.Fatalf("%s: error %q does not name %s", what, err, leaf.Cid())
					}
				}
				_, err = e.s.Blockstore().Get(ctx, leaf.Cid())
				want("Get", err)
				called := false
				err = e.s.Blockstore().View(ctx, leaf.Cid(), func([]byte) error { called = true; return nil })
				want("View", err)
				if called {
					t.Fatal("View called fn with corrupt bytes")
				}
				f, err := e.s.Cat(ctx, root)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(f)
				f.Close()
				want("Cat", err)
				if len(got) > 262144 || !bytes.Equal(got, data[:len(got)]) {
					t.Fatalf("Cat returned %d bytes before the error, want an intact prefix of the first leaf", len(got))
				}
				err = e.s.ExportCAR(ctx, io.Discard, root, store.ExportOptions{})
				want("ExportCAR", err)
				// Has and GetSize answer from the index alone.
				if n, err := e.s.Blockstore().GetSize(ctx, leaf.Cid()); err != nil || n != 262144 || !e.has(leaf.Cid()) {
					t.Fatalf("GetSize = %d, %v", n, err)
				}
				// DeleteBlock then Put repairs it.
				if err := e.s.Blockstore().DeleteBlock(ctx, leaf.Cid()); err != nil {
					t.Fatal(err)
				}
				e.put(leaf)
				if got, err := e.s.Blockstore().Get(ctx, leaf.Cid()); err != nil || !bytes.Equal(got.RawData(), leaf.RawData()) {
					t.Fatalf("after repair: %v", err)
				}
			})
		}
	}
}

// TestPackSpaceReclaimed checks that DeleteBlock and GC free pack space
// (hole punching) while Stat keeps counting logical bytes, and that GC
// removes a pack none of whose blocks is left.
func TestPackSpaceReclaimed(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	keep, err := e.s.Add(ctx, bytes.NewReader(stRand(1, 4<<20)), store.AddOptions{Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Add(ctx, bytes.NewReader(stRand(2, 8<<20)), store.AddOptions{}); err != nil {
		t.Fatal(err)
	}
	packs := packFiles(t, e.dir)
	if len(packs) != 1 {
		t.Fatalf("packs = %v, want one", packs)
	}
	before := diskBytes(t, packs[0])
	if before < 12<<20 {
		t.Fatalf("pack occupies %d bytes, want >= 12 MiB", before)
	}
	res, err := e.s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.FreedBytes < 8<<20 || res.Removed < 32 {
		t.Fatalf("GC = %+v, want the 8 MiB file removed", res)
	}
	after := diskBytes(t, packs[0])
	if after > before-7<<20 {
		t.Skipf("pack went from %d to %d bytes on disk: this filesystem does not punch holes", before, after)
	}
	if st := e.stat(); st.Bytes < 4<<20 || st.Bytes > 4<<20+64<<10 {
		t.Fatalf("Stat = %+v, want the logical size of the kept 4 MiB file", st)
	}

	// DeleteBlock of one packed block frees its 256 KiB.
	leaf := stRaw(stRand(1, 4<<20)[:262144])
	if err := e.s.Blockstore().DeleteBlock(ctx, leaf.Cid()); err != nil {
		t.Fatal(err)
	}
	if d := diskBytes(t, packs[0]); d > after-256<<10 {
		t.Fatalf("DeleteBlock: pack %d bytes on disk, was %d", d, after)
	}
	e.put(leaf) // repair: the pinned file is whole again

	// A pack that is no longer appended to is truncated after its last
	// live block (dropping a tail a crash left unindexed) and removed once
	// it holds nothing live. Make pack 1 old by giving the store a newer
	// one, after appending a garbage tail to it.
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	e.db = nil
	fi, err := os.Stat(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(packs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	newer := filepath.Join(e.dir, "packs", "00000002.pack")
	if err := os.WriteFile(newer, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(packs[0]); err != nil || fi2.Size() > fi.Size() {
		t.Fatalf("pack 1 after GC: %v, size %d; want truncated to at most %d", err, fi2.Size(), fi.Size())
	}
	if err := e.s.Walk(ctx, keep, func(blocks.Block) error { return nil }); err != nil {
		t.Fatalf("pinned file after trimming its pack: %v", err)
	}
	if err := e.s.Unpin(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if got := packFiles(t, e.dir); len(got) != 1 || got[0] != newer {
		t.Fatalf("packs after GC = %v, want only %s", got, newer)
	}
	c, err := e.s.Add(ctx, bytes.NewReader(stRand(3, 1<<20)), store.AddOptions{Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Walk(ctx, c, func(blocks.Block) error { return nil }); err != nil {
		t.Fatalf("add into the newer pack: %v", err)
	}
}

// TestPackUnindexedTail simulates a crash after a pack write and before its
// index entries: the garbage tail is never read, and later writes append
// after it.
func TestPackUnindexedTail(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	a := stRaw(stRand(1, 100<<10))
	e.put(a)
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	e.db = nil
	packs := packFiles(t, e.dir)
	f, err := os.OpenFile(packs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte{0xee}, 5000)); err != nil { // unaligned tail
		t.Fatal(err)
	}
	f.Close()
	e.open()
	b := stRaw(stRand(2, 100<<10))
	e.put(b)
	for _, blk := range []blocks.Block{a, b} {
		if got, err := e.s.Blockstore().Get(ctx, blk.Cid()); err != nil || !bytes.Equal(got.RawData(), blk.RawData()) {
			t.Fatalf("Get after a garbage tail: %v", err)
		}
	}
	if _, off := findInPacks(t, e.dir, b.RawData()); off%4096 != 0 || off < 100<<10+5000 {
		t.Fatalf("block written at %d, want 4096-aligned after the tail", off)
	}
}

// TestPackConcurrentWriters writes from several goroutines and two Stores
// on one database at once: appends must not overlap.
func TestPackConcurrentWriters(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	other := store.New(e.db, store.Options{NoDirectIO: true})
	var wg sync.WaitGroup
	var all []blocks.Block
	errs := make(chan error, 8)
	for w := range 8 {
		var mine []blocks.Block
		for i := range 16 {
			mine = append(mine, stRaw(stRand(uint64(1000*w+i), 64<<10+w*4096+i)))
		}
		all = append(all, mine...)
		bs := e.s.Blockstore()
		if w%2 == 1 {
			bs = other.Blockstore()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(mine); i += 4 {
				if err := bs.PutMany(ctx, mine[i:i+4]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, b := range all {
		if got, err := e.s.Blockstore().Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("Get %s after concurrent writes: %v", b.Cid(), err)
		}
	}
	if st := e.stat(); st.Blocks != len(all) {
		t.Fatalf("Stat = %+v, want %d blocks", st, len(all))
	}
}

// TestPackRepairFreesOldCopy: a Put that replaces a packed copy of another
// length (a repair) frees the old copy's space.
func TestPackRepairFreesOldCopy(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	good := stRaw(stRand(9, 128<<10))
	bad, err := blocks.NewBlockWithCid(stRand(10, 1<<20), good.Cid()) // trusted CID, wrong bytes
	if err != nil {
		t.Fatal(err)
	}
	e.put(bad)
	if _, err := e.s.Blockstore().Get(ctx, good.Cid()); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get of the wrong copy: %v, want ErrCorrupt", err)
	}
	pack := packFiles(t, e.dir)[0]
	before := diskBytes(t, pack)
	e.put(good)
	if got, err := e.s.Blockstore().Get(ctx, good.Cid()); err != nil || !bytes.Equal(got.RawData(), good.RawData()) {
		t.Fatalf("after repair: %v", err)
	}
	after := diskBytes(t, pack)
	if after > before-(1<<20)+(192<<10) {
		t.Fatalf("pack occupies %d bytes after the repair, %d before: the 1 MiB copy was not freed", after, before)
	}
}
