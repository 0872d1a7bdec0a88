package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func stBlock(t *testing.T, codec uint64, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.V1Builder{Codec: codec, MhType: mh.SHA2_256}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := blocks.NewBlockWithCid(data, c)
	return b
}

func TestLinks(t *testing.T) {
	a, b := stRaw([]byte("a")), stRaw([]byte("b"))
	cbor := stCBOR(t, "x", a.Cid(), b.Cid(), a.Cid())
	json := stBlock(t, cid.DagJSON, []byte(`{"l":[{"/":"`+a.Cid().String()+`"}],"m":{"/":"`+b.Cid().String()+`"}}`))
	cases := []struct {
		name string
		blk  blocks.Block
		want []cid.Cid
		err  error
	}{
		{"raw", a, nil, nil},
		{"dag-cbor keeps order and repeats", cbor, []cid.Cid{a.Cid(), b.Cid(), a.Cid()}, nil},
		{"dag-json", json, []cid.Cid{a.Cid(), b.Cid()}, nil},
		{"dag-pb garbage", stBlock(t, cid.DagProtobuf, []byte{0xff, 0xff}), nil, store.ErrUndecodable},
		{"dag-cbor garbage", stBlock(t, cid.DagCBOR, []byte{0xff}), nil, store.ErrUndecodable},
		{"unknown codec", stBlock(t, cid.GitRaw, []byte("blob 0\x00")), nil, store.ErrUnsupportedCodec},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.Links(tc.blk)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.blk.Cid().String()) {
					t.Fatalf("Links = %v, %v; want %v naming the block", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.EqualFunc(got, tc.want, cid.Cid.Equals) {
				t.Fatalf("Links = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestWalkOrder(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	// root → [x → [l1, l2], l2, y → [l3]]: pre-order, each block once.
	l1, l2, l3 := stRaw([]byte("1")), stRaw([]byte("2")), stRaw([]byte("3"))
	x := stCBOR(t, "x", l1.Cid(), l2.Cid())
	y := stCBOR(t, "y", l3.Cid())
	root := stCBOR(t, "root", x.Cid(), l2.Cid(), y.Cid())
	e.put(l1, l2, l3, x, y, root)
	var got []cid.Cid
	if err := e.s.Walk(ctx, root.Cid(), func(b blocks.Block) error { got = append(got, b.Cid()); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []cid.Cid{root.Cid(), x.Cid(), l1.Cid(), l2.Cid(), y.Cid(), l3.Cid()}
	if !slices.EqualFunc(got, want, cid.Cid.Equals) {
		t.Fatalf("Walk order %v, want %v", got, want)
	}

	// An error from fn stops the walk and comes back unchanged.
	stop := errors.New("stop")
	n := 0
	err := e.s.Walk(ctx, root.Cid(), func(blocks.Block) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("Walk with failing fn: %v after %d calls", err, n)
	}

	// A missing block is named with its parent.
	if err := e.s.Blockstore().DeleteBlock(ctx, l3.Cid()); err != nil {
		t.Fatal(err)
	}
	err = e.s.Walk(ctx, root.Cid(), func(blocks.Block) error { return nil })
	var mb *store.MissingBlockError
	if !errors.As(err, &mb) || !mb.Cid.Equals(l3.Cid()) || !mb.Parent.Equals(y.Cid()) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Walk over missing block: %v", err)
	}
}
