package store_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/boxo/blockservice"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	mh "github.com/multiformats/go-multihash"
)

// stEnv is a Store on a real badger database in a temporary directory.
type stEnv struct {
	t   testing.TB
	dir string
	db  *badger.DB
	s   *store.Store
	o   store.Options
}

func stOpen(t testing.TB, o store.Options) *stEnv {
	t.Helper()
	e := &stEnv{t: t, dir: t.TempDir(), o: o}
	e.open()
	t.Cleanup(func() {
		if e.db != nil {
			e.db.Close()
		}
	})
	return e
}

func (e *stEnv) open() {
	e.t.Helper()
	db, err := kv.Open(e.dir, kv.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.s = db, store.New(db, e.o)
}

// reopen closes the store and database and opens them again.
func (e *stEnv) reopen() {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.db = nil
	e.open()
}

func (e *stEnv) stat() store.Stats {
	e.t.Helper()
	st, err := e.s.Stat(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// keys returns the multihashes of every stored block.
func (e *stEnv) keys() map[string]bool {
	e.t.Helper()
	ch, errf, err := e.s.Blockstore().AllKeysChanWithErr(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]bool{}
	for c := range ch {
		out[string(c.Hash())] = true
	}
	if err := errf(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *stEnv) has(c cid.Cid) bool {
	e.t.Helper()
	ok, err := e.s.Blockstore().Has(context.Background(), c)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func (e *stEnv) put(blks ...blocks.Block) {
	e.t.Helper()
	if err := e.s.Blockstore().PutMany(context.Background(), blks); err != nil {
		e.t.Fatal(err)
	}
}

// overwrite replaces a block's stored bytes behind the store's back.
func (e *stEnv) overwrite(c cid.Cid, data []byte) {
	e.t.Helper()
	k := append(append([]byte{}, kv.PrefixBlocks...), c.Hash()...)
	if err := e.db.Update(func(txn *badger.Txn) error { return txn.Set(k, data) }); err != nil {
		e.t.Fatal(err)
	}
}

func stRaw(data []byte) blocks.Block {
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(data)
	if err != nil {
		panic(err)
	}
	b, _ := blocks.NewBlockWithCid(data, c)
	return b
}

func stRand(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// stCBOR stores a dag-cbor block {"name": name, "links": [links...]}.
func stCBOR(t testing.TB, name string, links ...cid.Cid) blocks.Block {
	t.Helper()
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "name", qp.String(name))
		qp.MapEntry(ma, "links", qp.List(int64(len(links)), func(la datamodel.ListAssembler) {
			for _, l := range links {
				qp.ListEntry(la, qp.Link(cidlink.Link{Cid: l}))
			}
		}))
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(n, &buf); err != nil {
		t.Fatal(err)
	}
	c, err := cid.V1Builder{Codec: cid.DagCBOR, MhType: mh.SHA2_256}.Sum(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := blocks.NewBlockWithCid(buf.Bytes(), c)
	return b
}

// stFile stores data as a UnixFS file DAG (CIDv1, raw leaves, balanced,
// maxLinks per node) built by boxo's importer and returns its root and the
// CIDs of all its blocks.
func (e *stEnv) stFile(data []byte, chunk int64, maxLinks int) (cid.Cid, []cid.Cid) {
	e.t.Helper()
	bs := e.s.Blockstore()
	rec := &recordingDAG{DAGService: merkledag.NewDAGService(blockservice.New(bs, offline.Exchange(bs)))}
	p := helpers.DagBuilderParams{
		Dagserv:    rec,
		Maxlinks:   maxLinks,
		RawLeaves:  true,
		CidBuilder: cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256},
	}
	db, err := p.New(chunker.NewSizeSplitter(bytes.NewReader(data), chunk))
	if err != nil {
		e.t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		e.t.Fatal(err)
	}
	return nd.Cid(), rec.cids
}

type ipldNode = ipld.Node

type recordingDAG struct {
	ipld.DAGService
	cids []cid.Cid
}

func (r *recordingDAG) Add(ctx context.Context, n ipldNode) error {
	r.cids = append(r.cids, n.Cid())
	return r.DAGService.Add(ctx, n)
}

func (r *recordingDAG) AddMany(ctx context.Context, ns []ipldNode) error {
	for _, n := range ns {
		r.cids = append(r.cids, n.Cid())
	}
	return r.DAGService.AddMany(ctx, ns)
}

func TestBlockstorePutGetSize(t *testing.T) {
	// Sizes straddle badger's value threshold (1 KiB) and the varint
	// boundaries that GetSize corrects for (16 KiB, 2 MiB).
	sizes := []int{0, 1, 1023, 1024, 1025, 16383, 16384, 16385, 1 << 20, 2<<20 - 1, 2 << 20, 2<<20 + 1}
	for _, sync := range []bool{false, true} {
		e := stOpen(t, store.Options{SyncWrites: sync})
		ctx := context.Background()
		var blks []blocks.Block
		var total int64
		for i, n := range sizes {
			blks = append(blks, stRaw(stRand(uint64(i), n)))
			total += int64(n)
		}
		e.put(blks...)
		check := func(when string) {
			for _, b := range blks {
				got, err := e.s.Blockstore().Get(ctx, b.Cid())
				if err != nil {
					t.Fatalf("%s: Get %s: %v", when, b.Cid(), err)
				}
				if !bytes.Equal(got.RawData(), b.RawData()) {
					t.Fatalf("%s: Get %s: wrong bytes", when, b.Cid())
				}
				n, err := e.s.Blockstore().GetSize(ctx, b.Cid())
				if err != nil || n != len(b.RawData()) {
					t.Fatalf("%s: GetSize of a %d-byte block = %d, %v", when, len(b.RawData()), n, err)
				}
			}
			if st := e.stat(); st.Blocks != len(sizes) || st.Bytes != total {
				t.Fatalf("%s: Stat = %+v, want %d blocks, %d bytes", when, st, len(sizes), total)
			}
		}
		check("fresh (sync=" + map[bool]string{false: "off", true: "on"}[sync] + ")")
		e.reopen()
		check("after reopen")
	}
}

func TestBlockstoreMissingAndIdentity(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	bs := e.s.Blockstore()
	absent := stRaw([]byte("never stored")).Cid()
	if _, err := bs.Get(ctx, absent); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), absent.String()) {
		t.Fatalf("Get absent: %v, want ErrNotFound naming %s", err, absent)
	}
	if n, err := bs.GetSize(ctx, absent); !errors.Is(err, store.ErrNotFound) || n != -1 {
		t.Fatalf("GetSize absent = %d, %v", n, err)
	}
	if e.has(absent) {
		t.Fatal("Has(absent) = true")
	}
	if err := bs.DeleteBlock(ctx, absent); err != nil {
		t.Fatalf("DeleteBlock absent: %v", err)
	}

	id, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.IDENTITY}.Sum([]byte("inline"))
	if err != nil {
		t.Fatal(err)
	}
	idb, _ := blocks.NewBlockWithCid([]byte("inline"), id)
	e.put(idb)
	if st := e.stat(); st.Blocks != 0 {
		t.Fatalf("identity block was stored: %+v", st)
	}
	got, err := bs.Get(ctx, id)
	if err != nil || string(got.RawData()) != "inline" || !e.has(id) {
		t.Fatalf("identity Get = %v, %v", got, err)
	}
}

func TestBlockstoreAllKeysAndDelete(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	var want []blocks.Block
	for i := range 100 {
		want = append(want, stRaw(stRand(uint64(i), 100+i)))
	}
	e.put(want...)
	got := e.keys()
	if len(got) != len(want) {
		t.Fatalf("AllKeysChan listed %d blocks, want %d", len(got), len(want))
	}
	for _, b := range want {
		if !got[string(b.Cid().Hash())] {
			t.Fatalf("AllKeysChan misses %s", b.Cid())
		}
	}
	if err := e.s.Blockstore().DeleteBlock(ctx, want[0].Cid()); err != nil {
		t.Fatal(err)
	}
	if e.has(want[0].Cid()) || len(e.keys()) != len(want)-1 {
		t.Fatal("DeleteBlock did not delete")
	}

	// A cancelled listing reports that it stopped early.
	cctx, cancel := context.WithCancel(ctx)
	ch, errf, err := e.s.Blockstore().AllKeysChanWithErr(cctx)
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	cancel()
	for range ch {
	}
	if err := errf(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled listing: err = %v, want context.Canceled", err)
	}
}

func TestCorruptBlockDetected(t *testing.T) {
	cases := []struct {
		name    string
		replace func(orig []byte) []byte
	}{
		{"same length, one bit flipped", func(o []byte) []byte { c := bytes.Clone(o); c[len(c)/2] ^= 1; return c }},
		{"shorter", func(o []byte) []byte { return o[:len(o)-1] }},
		{"longer", func(o []byte) []byte { return append(bytes.Clone(o), 0) }},
		{"empty", func([]byte) []byte { return []byte{} }},
		{"other block's bytes", func([]byte) []byte { return []byte("something else entirely") }},
	}
	// Inline in the LSM tree, in the value log, and a pack file's block
	// whose index entry overwrite replaces with (wrong) inline bytes; pack
	// bytes themselves are damaged in TestPackCorruption.
	for _, size := range []int{100, 4 << 10, 64 << 10} {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				e := stOpen(t, store.Options{})
				ctx := context.Background()
				b := stRaw(stRand(7, size))
				e.put(b)
				e.overwrite(b.Cid(), tc.replace(b.RawData()))

				got, err := e.s.Blockstore().Get(ctx, b.Cid())
				var ce *store.CorruptBlockError
				if !errors.As(err, &ce) || !ce.Cid.Equals(b.Cid()) || !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("Get corrupt block = %v, %v; want *CorruptBlockError for %s", got, err, b.Cid())
				}
				if !strings.Contains(err.Error(), b.Cid().String()) {
					t.Fatalf("error %q does not name the CID", err)
				}
				called := false
				err = e.s.Blockstore().View(ctx, b.Cid(), func([]byte) error { called = true; return nil })
				if !errors.Is(err, store.ErrCorrupt) || called {
					t.Fatalf("View corrupt block: err %v, callback called %v", err, called)
				}
				// Walk and export refuse it too.
				if err := e.s.Walk(ctx, b.Cid(), func(blocks.Block) error { return nil }); !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("Walk over corrupt block: %v", err)
				}
				if err := e.s.ExportCAR(ctx, &bytes.Buffer{}, b.Cid(), store.ExportOptions{}); !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("ExportCAR of corrupt block: %v", err)
				}

				// Put of the right bytes repairs a copy of another
				// length; a same-length copy is kept (PutMany skips it),
				// and DeleteBlock+Put repairs it.
				e.put(b)
				if _, err := e.s.Blockstore().Get(ctx, b.Cid()); err != nil {
					if err := e.s.Blockstore().DeleteBlock(ctx, b.Cid()); err != nil {
						t.Fatal(err)
					}
					e.put(b)
				}
				if got, err := e.s.Blockstore().Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
					t.Fatalf("after repair: %v", err)
				}
			})
		}
	}
}

func TestNoVerifyOnRead(t *testing.T) {
	e := stOpen(t, store.Options{NoVerifyOnRead: true})
	b := stRaw([]byte("payload"))
	e.put(b)
	e.overwrite(b.Cid(), []byte("tampered"))
	got, err := e.s.Blockstore().Get(context.Background(), b.Cid())
	if err != nil || string(got.RawData()) != "tampered" {
		t.Fatalf("NoVerifyOnRead Get = %v, %v; want the stored bytes unchecked", got, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	root, all := e.stFile(stRand(1, 300<<10), 16<<10, 4)
	if err := e.s.Pin(ctx, root, store.PinOptions{Name: "keep"}); err != nil {
		t.Fatal(err)
	}
	before := e.stat()
	e.reopen()
	if after := e.stat(); after != before {
		t.Fatalf("Stat after reopen = %+v, before %+v", after, before)
	}
	for _, c := range all {
		if _, err := e.s.Blockstore().Get(ctx, c); err != nil {
			t.Fatalf("after reopen: %v", err)
		}
	}
	pins, err := e.s.Pins(ctx)
	if err != nil || len(pins) != 1 || !pins[0].Cid.Equals(root) || pins[0].Name != "keep" {
		t.Fatalf("pins after reopen = %+v, %v", pins, err)
	}
}
