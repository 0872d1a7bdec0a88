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

func TestPinUnpinList(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	fileRoot, _ := e.stFile(stRand(2, 200<<10), 16<<10, 3)
	leaf := stRaw([]byte("leaf"))
	e.put(leaf)
	obj := stCBOR(t, "obj", fileRoot, leaf.Cid())
	e.put(obj)

	start := time.Now().Add(-time.Second)
	for _, p := range []struct {
		c cid.Cid
		o store.PinOptions
	}{
		{obj.Cid(), store.PinOptions{Name: "object"}},
		{leaf.Cid(), store.PinOptions{Name: "just-the-leaf", Direct: true}},
	} {
		if err := e.s.Pin(ctx, p.c, p.o); err != nil {
			t.Fatalf("Pin %s: %v", p.c, err)
		}
	}
	pins, err := e.s.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Pin{}
	for _, p := range pins {
		got[p.Cid.String()] = p
		if p.Created.Before(start) || p.Created.After(time.Now().Add(time.Second)) {
			t.Errorf("pin %s Created = %v", p.Cid, p.Created)
		}
	}
	if len(got) != 2 || got[obj.Cid().String()].Name != "object" || got[obj.Cid().String()].Direct ||
		got[leaf.Cid().String()].Name != "just-the-leaf" || !got[leaf.Cid().String()].Direct {
		t.Fatalf("Pins = %+v", pins)
	}
	if st := e.stat(); st.Pins != 2 {
		t.Fatalf("Stat.Pins = %d", st.Pins)
	}

	// Re-pinning renames and keeps the creation time.
	created := got[obj.Cid().String()].Created
	if err := e.s.Pin(ctx, obj.Cid(), store.PinOptions{Name: "renamed"}); err != nil {
		t.Fatal(err)
	}
	pins, _ = e.s.Pins(ctx)
	for _, p := range pins {
		if p.Cid.Equals(obj.Cid()) && (p.Name != "renamed" || !p.Created.Equal(created)) {
			t.Fatalf("re-pin: %+v, want name renamed, created %v", p, created)
		}
	}

	for _, tc := range []struct {
		c    cid.Cid
		want bool
	}{{obj.Cid(), true}, {leaf.Cid(), true}, {fileRoot, false}} {
		if ok, err := e.s.IsPinned(ctx, tc.c); err != nil || ok != tc.want {
			t.Errorf("IsPinned(%s) = %v, %v; want %v", tc.c, ok, err, tc.want)
		}
	}

	if err := e.s.Unpin(ctx, obj.Cid()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.s.IsPinned(ctx, obj.Cid()); ok {
		t.Fatal("still pinned after Unpin")
	}
	err = e.s.Unpin(ctx, obj.Cid())
	if !errors.Is(err, store.ErrNotPinned) || !strings.Contains(err.Error(), obj.Cid().String()) {
		t.Fatalf("second Unpin = %v, want ErrNotPinned naming the CID", err)
	}
}

func TestPinIncompleteDAG(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	root, all := e.stFile(stRand(3, 200<<10), 16<<10, 3)
	missing := all[len(all)/2]
	if err := e.s.Blockstore().DeleteBlock(ctx, missing); err != nil {
		t.Fatal(err)
	}
	absent := stRaw([]byte("absent")).Cid()
	undecodable := stRaw([]byte{0xff, 0x00, 0x13})
	badCBOR, _ := blocks.NewBlockWithCid(undecodable.RawData(), cid.NewCidV1(cid.DagCBOR, undecodable.Cid().Hash()))
	e.put(badCBOR)

	cases := []struct {
		name    string
		c       cid.Cid
		o       store.PinOptions
		want    error
		mention cid.Cid
	}{
		{"recursive, block missing mid-DAG", root, store.PinOptions{}, store.ErrNotFound, missing},
		{"recursive, root missing", absent, store.PinOptions{}, store.ErrNotFound, absent},
		{"direct, block missing", absent, store.PinOptions{Direct: true}, store.ErrNotFound, absent},
		{"recursive, undecodable block", badCBOR.Cid(), store.PinOptions{}, store.ErrUndecodable, badCBOR.Cid()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := e.s.Pin(ctx, tc.c, tc.o)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention.String()) {
				t.Fatalf("Pin = %v; want %v naming %s", err, tc.want, tc.mention)
			}
			if ok, _ := e.s.IsPinned(ctx, tc.c); ok {
				t.Fatal("a failed Pin left a pin")
			}
		})
	}
	// A direct pin needs only the root block.
	if err := e.s.Pin(ctx, root, store.PinOptions{Direct: true}); err != nil {
		t.Fatalf("direct pin of a stored root with missing children: %v", err)
	}
}
