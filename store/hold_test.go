package store_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// TestHoldKeepsWritesUntilRelease: blocks written through a Hold (Put, Add)
// and blocks a Hold keeps survive any number of GCs until Release, and then
// go with the next GC. Without the Hold each of them is garbage at the GC
// right after its write: the race of issue 12 (an attestation stored, then
// collected before the index named it).
func TestHoldKeepsWritesUntilRelease(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	h := e.s.NewHold()

	leaf := stRaw([]byte("held leaf"))
	rec := stCBOR(t, "held record", leaf.Cid())
	if err := h.Put(ctx, leaf, rec); err != nil {
		t.Fatal(err)
	}
	data := stRand(42, 700<<10) // several chunks: a DAG, not one block
	file, err := h.Add(ctx, bytes.NewReader(data), store.AddOptions{Chunker: "size-65536"})
	if err != nil {
		t.Fatal(err)
	}
	fileBlocks := e.dag(file)
	if len(fileBlocks) < 3 {
		t.Fatalf("file %s has %d blocks; want a DAG", file, len(fileBlocks))
	}
	old := stRaw([]byte("stored before, kept later"))
	e.put(old)
	if ok, err := h.Keep(ctx, old.Cid()); err != nil || !ok {
		t.Fatalf("Keep(%s) = %v, %v; want true", old.Cid(), ok, err)
	}
	gone := stRaw([]byte("never stored"))
	if ok, err := h.Keep(ctx, gone.Cid()); err != nil || ok {
		t.Fatalf("Keep of a missing block = %v, %v; want false, nil", ok, err)
	}
	garbage := stRaw([]byte("not held"))
	e.put(garbage)

	held := append([]cid.Cid{leaf.Cid(), rec.Cid(), old.Cid()}, fileBlocks...)
	for range 2 {
		if _, err := e.s.GC(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range held {
			if !e.has(c) {
				t.Fatalf("GC collected %s, held by an open Hold", c)
			}
		}
		if e.has(garbage.Cid()) {
			t.Fatal("GC kept a block no root and no Hold reaches")
		}
	}
	r, err := e.s.Cat(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := got.ReadFrom(r); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("held file %s reads back wrong (%v)", file, err)
	}
	r.Close()

	// A second Hold of the same block keeps it after the first is released.
	h2 := e.s.NewHold()
	if ok, err := h2.Keep(ctx, leaf.Cid()); err != nil || !ok {
		t.Fatalf("second Keep: %v, %v", ok, err)
	}
	h.Release()
	h.Release() // idempotent
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.has(leaf.Cid()) {
		t.Fatalf("GC collected %s, still held by a second Hold", leaf.Cid())
	}
	for _, c := range append([]cid.Cid{rec.Cid(), old.Cid()}, fileBlocks...) {
		if e.has(c) {
			t.Fatalf("GC kept %s after its Hold was released", c)
		}
	}
	h2.Release()
	// A released Hold holds nothing new.
	if err := h2.Put(ctx, garbage); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if e.has(leaf.Cid()) || e.has(garbage.Cid()) {
		t.Fatal("GC kept blocks of released Holds")
	}
}

// TestHoldAcrossLockingCalls: a Hold kept open across calls that take
// GCLock (Pin) while GCs run and wait concurrently neither deadlocks nor
// loses a block.
func TestHoldAcrossLockingCalls(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.s.GC(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var pinned []cid.Cid
	for i := range 30 {
		h := e.s.NewHold()
		leaf := stRaw(stRand(uint64(1000+i), 1000))
		if err := h.Put(ctx, leaf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // let a GC run while only the Hold keeps leaf
		root := stCBOR(t, "root", leaf.Cid())
		if err := h.Put(ctx, root); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Pin(ctx, root.Cid(), store.PinOptions{}); err != nil {
			t.Fatalf("pin %d: %v", i, err)
		}
		h.Release()
		pinned = append(pinned, root.Cid(), leaf.Cid())
	}
	close(stop)
	wg.Wait()
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range pinned {
		if !e.has(c) {
			t.Fatalf("lost %s", c)
		}
	}
}

// dag returns every CID of the DAG under root.
func (e *stEnv) dag(root cid.Cid) []cid.Cid {
	e.t.Helper()
	var out []cid.Cid
	err := e.s.Walk(context.Background(), root, func(b blocks.Block) error {
		out = append(out, b.Cid())
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestHoldReleasedDuringMark: a writer commits its durable root right after
// GC has read the root sources and releases its Hold before GC gets to the
// Holds. GC must still keep the block: the Holds are read before the roots.
func TestHoldReleasedDuringMark(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	h := e.s.NewHold()
	blk := stRaw([]byte("committed and released mid-mark"))
	if err := h.Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var committed []cid.Cid
	e.s.RegisterRoots("index", func(context.Context) ([]cid.Cid, error) {
		mu.Lock()
		defer mu.Unlock()
		out := append([]cid.Cid(nil), committed...)
		// The writer, concurrently: root committed, then Hold released
		// (neither takes the GC lock).
		committed = append(committed, blk.Cid())
		h.Release()
		return out, nil
	})
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.has(blk.Cid()) {
		t.Fatalf("GC collected %s, held until its root was committed", blk.Cid())
	}
}
