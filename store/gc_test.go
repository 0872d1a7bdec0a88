package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

func TestGCKeepsRootsRemovesRest(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()

	// A: a UnixFS file under a dag-cbor object, pinned recursively.
	aFile, aAll := e.stFile(stRand(10, 300<<10), 16<<10, 4)
	aLeaf := stRaw([]byte("A's extra leaf"))
	aObj := stCBOR(t, "A", aFile, aLeaf.Cid())
	e.put(aLeaf, aObj)
	aKeep := append([]cid.Cid{aObj.Cid(), aLeaf.Cid()}, aAll...)
	// B: a file whose root alone is pinned directly.
	bRoot, bAll := e.stFile(stRand(11, 100<<10), 16<<10, 4)
	// C: a file reachable only from a registered RootSource (through a
	// dag-cbor block), plus a root the node never held.
	cFile, cAll := e.stFile(stRand(12, 100<<10), 16<<10, 4)
	cObj := stCBOR(t, "C", cFile)
	e.put(cObj)
	cKeep := append([]cid.Cid{cObj.Cid()}, cAll...)
	// D: unreferenced.
	_, dAll := e.stFile(stRand(13, 100<<10), 16<<10, 4)

	if err := e.s.Pin(ctx, aObj.Cid(), store.PinOptions{Name: "A"}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Pin(ctx, bRoot, store.PinOptions{Name: "B", Direct: true}); err != nil {
		t.Fatal(err)
	}
	e.s.RegisterRoots("test", func(context.Context) ([]cid.Cid, error) {
		return []cid.Cid{cObj.Cid(), stRaw([]byte("never held")).Cid()}, nil
	})

	var wantFreed int64
	var garbage []cid.Cid
	for _, c := range append(append([]cid.Cid{}, bAll...), dAll...) {
		if c.Equals(bRoot) {
			continue
		}
		n, err := e.s.Blockstore().GetSize(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		wantFreed += int64(n)
		garbage = append(garbage, c)
	}
	before := e.stat()
	res, err := e.s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := e.stat()
	if res.Removed != len(garbage) || res.FreedBytes != wantFreed || res.Kept != after.Blocks ||
		after.Blocks != before.Blocks-len(garbage) || after.Bytes != before.Bytes-wantFreed {
		t.Fatalf("GC = %+v (stat %+v → %+v), want %d removed, %d bytes freed", res, before, after, len(garbage), wantFreed)
	}
	for _, c := range append(append(aKeep, cKeep...), bRoot) {
		if !e.has(c) {
			t.Errorf("GC removed %s, which is reachable from a root", c)
		}
	}
	for _, c := range garbage {
		if e.has(c) {
			t.Errorf("GC kept unreachable %s", c)
		}
	}

	// Unpinning A and dropping the root source makes them garbage too.
	if err := e.s.Unpin(ctx, aObj.Cid()); err != nil {
		t.Fatal(err)
	}
	e.s.RegisterRoots("test", func(context.Context) ([]cid.Cid, error) { return nil, nil })
	res, err = e.s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.stat(); st.Blocks != 1 || res.Kept != 1 || !e.has(bRoot) {
		t.Fatalf("second GC = %+v, stat %+v; want only B's root left", res, st)
	}
}

func TestGCRefusesWhenMarkFails(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		setup func(e *stEnv) (mention string)
		want  error
	}{
		{"pinned DAG lost an interior block", func(e *stEnv) string {
			root, all := e.stFile(stRand(20, 300<<10), 16<<10, 3)
			if err := e.s.Pin(ctx, root, store.PinOptions{}); err != nil {
				t.Fatal(err)
			}
			var interior cid.Cid
			for _, c := range all {
				if c.Type() == cid.DagProtobuf && !c.Equals(root) {
					interior = c
				}
			}
			if err := e.s.Blockstore().DeleteBlock(ctx, interior); err != nil {
				t.Fatal(err)
			}
			return interior.String()
		}, store.ErrNotFound},
		{"root source fails", func(e *stEnv) string {
			e.s.RegisterRoots("broken-log", func(context.Context) ([]cid.Cid, error) {
				return nil, errors.New("log unreadable")
			})
			return "broken-log"
		}, nil},
		{"pinned block is corrupt", func(e *stEnv) string {
			obj := stCBOR(t, "x")
			e.put(obj)
			if err := e.s.Pin(ctx, obj.Cid(), store.PinOptions{}); err != nil {
				t.Fatal(err)
			}
			e.overwrite(obj.Cid(), []byte("garbage"))
			return obj.Cid().String()
		}, store.ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := stOpen(t, store.Options{})
			e.stFile(stRand(21, 50<<10), 16<<10, 4) // garbage that must survive
			mention := tc.setup(e)
			before := e.stat()
			_, err := e.s.GC(ctx)
			if err == nil || !strings.Contains(err.Error(), mention) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("GC = %v; want an error naming %s (%v)", err, mention, tc.want)
			}
			if after := e.stat(); after != before {
				t.Fatalf("failed GC changed the store: %+v → %+v", before, after)
			}
		})
	}
}

func TestGCWaitsForWriterHoldingLock(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	leaves := make([]blocks.Block, 20)
	links := make([]cid.Cid, len(leaves))
	for i := range leaves {
		leaves[i] = stRaw(stRand(uint64(100+i), 4096))
		links[i] = leaves[i].Cid()
	}
	root := stCBOR(t, "written under GCLock", links...)

	locked := make(chan struct{})
	writerDone := make(chan time.Time, 1)
	go func() {
		unlock := e.s.GCLock()
		close(locked)
		for _, b := range leaves { // slowly, so an unsynchronised GC would interleave
			if err := e.s.Blockstore().Put(ctx, b); err != nil {
				t.Error(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := e.s.Blockstore().Put(ctx, root); err != nil {
			t.Error(err)
		}
		if err := e.s.PinHeld(ctx, root.Cid(), store.PinOptions{Name: "writer"}); err != nil {
			t.Error(err)
		}
		writerDone <- time.Now()
		unlock()
	}()
	<-locked
	res, err := e.s.GC(ctx)
	gcDone := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if done := <-writerDone; gcDone.Before(done) {
		t.Fatal("GC finished before the writer released GCLock")
	}
	if res.Removed != 0 || res.Kept != len(leaves)+1 {
		t.Fatalf("GC = %+v; want nothing removed, %d kept", res, len(leaves)+1)
	}
	for _, b := range append(leaves, root) {
		if !e.has(b.Cid()) {
			t.Fatalf("GC collected %s written under GCLock", b.Cid())
		}
	}
}
