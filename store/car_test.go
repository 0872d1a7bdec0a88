package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

// stSampleDAG stores a DAG mixing codecs: a dag-cbor root linking to a
// UnixFS file (dag-pb over raw leaves, several levels), a raw block, and a
// nested dag-cbor block that links to the same file again.
func (e *stEnv) stSampleDAG(seed uint64, size int) cid.Cid {
	e.t.Helper()
	file, _ := e.stFile(stRand(seed, size), 16<<10, 4)
	raw := stRaw(stRand(seed+1, 3000))
	inner := stCBOR(e.t, "inner", raw.Cid(), file)
	root := stCBOR(e.t, "root", file, raw.Cid(), inner.Cid())
	e.put(raw, inner, root)
	return root.Cid()
}

func (e *stEnv) export(root cid.Cid, version int) []byte {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.s.ExportCAR(context.Background(), &buf, root, store.ExportOptions{Version: version}); err != nil {
		e.t.Fatal(err)
	}
	return buf.Bytes()
}

// stCAR writes a CAR with the given roots and (cid, bytes) sections as is,
// without checking that the bytes match.
func stCAR(t testing.TB, version int, roots []cid.Cid, blks ...blocks.Block) []byte {
	t.Helper()
	ctx := context.Background()
	if version == 1 {
		var buf bytes.Buffer
		w, err := storage.NewWritable(&buf, roots, car.WriteAsCarV1(true), car.AllowDuplicatePuts(true))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blks {
			if err := w.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "v2.car"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := storage.NewWritable(f, roots)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blks {
		if err := w.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stInputs are the ways ImportCAR reads: a plain reader (spooled in memory
// or, past the limit, to a temporary file) and a regular file (read in place,
// twice).
var stInputs = []struct {
	name string
	open func(t testing.TB, data []byte) io.Reader
}{
	{"reader", func(_ testing.TB, data []byte) io.Reader { return bytes.NewReader(data) }},
	{"reader spooled to disk", func(t testing.TB, data []byte) io.Reader {
		t.Cleanup(store.SetSpoolMemMax(1024))
		return bytes.NewReader(data)
	}},
	{"file", func(t testing.TB, data []byte) io.Reader {
		p := filepath.Join(t.TempDir(), "in.car")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}},
}

func TestCARRoundTrip(t *testing.T) {
	src := stOpen(t, store.Options{})
	ctx := context.Background()
	root := src.stSampleDAG(30, 500<<10)
	var walked []cid.Cid
	if err := src.s.Walk(ctx, root, func(b blocks.Block) error { walked = append(walked, b.Cid()); return nil }); err != nil {
		t.Fatal(err)
	}
	if !walked[0].Equals(root) || len(walked) != src.stat().Blocks {
		t.Fatalf("Walk visited %d blocks starting at %s; want all %d starting at the root", len(walked), walked[0], src.stat().Blocks)
	}

	for _, version := range []int{1, 2} {
		for _, in := range stInputs {
			t.Run(fmt.Sprintf("v%d/%s", version, in.name), func(t *testing.T) {
				var exported []int64
				var buf bytes.Buffer
				err := src.s.ExportCAR(ctx, &buf, root, store.ExportOptions{Version: version,
					Progress: func(n int64) { exported = append(exported, n) }})
				if err != nil {
					t.Fatal(err)
				}
				data := buf.Bytes()
				if len(exported) == 0 || exported[len(exported)-1] != int64(len(data)) {
					t.Fatalf("export progress ended at %v, want %d", exported, len(data))
				}

				// An independent reader accepts it, with an index for v2.
				rd, err := car.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if rd.Version != uint64(version) {
					t.Fatalf("CAR version %d, want %d", rd.Version, version)
				}
				stats, err := rd.Inspect(true)
				if err != nil {
					t.Fatalf("go-car Inspect: %v", err)
				}
				if stats.BlockCount != uint64(len(walked)) || len(stats.Roots) != 1 || !stats.Roots[0].Equals(root) {
					t.Fatalf("CAR has %d blocks, roots %v; want %d, [%s]", stats.BlockCount, stats.Roots, len(walked), root)
				}
				if version == 2 && (!rd.Header.HasIndex() || stats.IndexCodec == 0) {
					t.Fatal("CARv2 has no index")
				}

				dst := stOpen(t, store.Options{})
				var imported int64
				res, err := dst.s.ImportCAR(ctx, in.open(t, data), store.ImportOptions{Progress: func(n int64) { imported = n }})
				if err != nil {
					t.Fatal(err)
				}
				if imported != int64(len(data)) && version == 1 {
					t.Errorf("import progress ended at %d, want %d", imported, len(data))
				}
				st := dst.stat()
				if len(res.Roots) != 1 || !res.Roots[0].Equals(root) || res.Blocks != st.Blocks || res.Bytes != st.Bytes {
					t.Fatalf("ImportCAR = %+v, store %+v", res, st)
				}
				if st.Pins != 0 {
					t.Fatal("ImportCAR pinned without being asked")
				}
				srcKeys, dstKeys := src.keys(), dst.keys()
				if len(srcKeys) != len(dstKeys) {
					t.Fatalf("imported %d blocks, source has %d", len(dstKeys), len(srcKeys))
				}
				for k := range srcKeys {
					if !dstKeys[k] {
						t.Fatal("a block is missing after the round trip")
					}
				}
				if again := dst.export(root, version); !bytes.Equal(again, data) {
					t.Fatal("re-export from the imported store differs")
				}
			})
		}
	}
}

func TestCARImportPin(t *testing.T) {
	src := stOpen(t, store.Options{})
	ctx := context.Background()
	root := src.stSampleDAG(31, 200<<10)
	data := src.export(root, 1)

	dst := stOpen(t, store.Options{})
	if _, err := dst.s.ImportCAR(ctx, bytes.NewReader(data), store.ImportOptions{Pin: true, PinName: "imported"}); err != nil {
		t.Fatal(err)
	}
	pins, err := dst.s.Pins(ctx)
	if err != nil || len(pins) != 1 || !pins[0].Cid.Equals(root) || pins[0].Name != "imported" || pins[0].Direct {
		t.Fatalf("pins after import = %+v, %v", pins, err)
	}
	if res, err := dst.s.GC(ctx); err != nil || res.Removed != 0 {
		t.Fatalf("GC after pinned import = %+v, %v", res, err)
	}

	// A CAR holding only part of a DAG whose rest is already stored can be
	// imported and pinned: completeness counts both.
	part := stOpen(t, store.Options{})
	rd, err := car.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var first blocks.Block
	for {
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b // the root: only it goes into the CAR
			continue
		}
		part.put(b)
	}
	if _, err := part.s.ImportCAR(ctx, bytes.NewReader(stCAR(t, 1, []cid.Cid{root}, first)), store.ImportOptions{Pin: true}); err != nil {
		t.Fatalf("import of a root whose children are stored: %v", err)
	}
}

func TestCARImportRejects(t *testing.T) {
	src := stOpen(t, store.Options{})
	ctx := context.Background()
	root := src.stSampleDAG(32, 100<<10)
	good1 := src.export(root, 1)
	good2 := src.export(root, 2)

	leaf := stRaw([]byte("a leaf"))
	forged, _ := blocks.NewBlockWithCid([]byte("not the leaf"), leaf.Cid())
	absent := stRaw([]byte("declared, never shipped")).Cid()
	other := stRaw([]byte("another"))
	partialRoot := stCBOR(t, "partial", leaf.Cid())

	cases := []struct {
		name    string
		data    []byte
		opts    store.ImportOptions
		want    []error
		mention string
	}{
		{"bad block v1", stCAR(t, 1, []cid.Cid{other.Cid()}, other, forged), store.ImportOptions{},
			[]error{store.ErrInvalidCAR, store.ErrCorrupt}, leaf.Cid().String()},
		{"bad block v2", stCAR(t, 2, []cid.Cid{other.Cid()}, other, forged), store.ImportOptions{},
			[]error{store.ErrInvalidCAR, store.ErrCorrupt}, leaf.Cid().String()},
		{"bad block after many good ones", append(bytes.Clone(good1), stCAR(t, 1, []cid.Cid{other.Cid()}, forged)[len(stCAR(t, 1, []cid.Cid{other.Cid()})):]...),
			store.ImportOptions{}, []error{store.ErrCorrupt}, leaf.Cid().String()},
		{"truncated mid-section v1", good1[:len(good1)-100], store.ImportOptions{}, []error{store.ErrInvalidCAR}, "section"},
		{"truncated mid-section v2", good2[:len(good2)/2], store.ImportOptions{}, []error{store.ErrInvalidCAR}, "section"},
		{"truncated header", good1[:20], store.ImportOptions{}, []error{store.ErrInvalidCAR}, "header"},
		{"missing root", stCAR(t, 1, []cid.Cid{other.Cid(), absent}, other), store.ImportOptions{},
			[]error{store.ErrMissingRoot}, absent.String()},
		{"garbage", stRand(33, 4096), store.ImportOptions{}, []error{store.ErrInvalidCAR}, "header"},
		{"empty", nil, store.ImportOptions{}, []error{store.ErrInvalidCAR}, "header"},
		{"trailing garbage", append(bytes.Clone(good1), 0xde, 0xad, 0xbe, 0xef), store.ImportOptions{}, []error{store.ErrInvalidCAR}, "section"},
		{"pin of an incomplete DAG", stCAR(t, 1, []cid.Cid{partialRoot.Cid()}, partialRoot), store.ImportOptions{Pin: true},
			[]error{store.ErrNotFound}, leaf.Cid().String()},
	}
	for _, tc := range cases {
		for _, in := range stInputs {
			t.Run(tc.name+"/"+in.name, func(t *testing.T) {
				e := stOpen(t, store.Options{})
				e.stSampleDAG(34, 50<<10) // the store is not empty
				before, keysBefore := e.stat(), e.keys()
				spool := t.TempDir()
				tc.opts.TempDir = spool
				_, err := e.s.ImportCAR(ctx, in.open(t, tc.data), tc.opts)
				if err == nil {
					t.Fatal("ImportCAR accepted it")
				}
				for _, w := range tc.want {
					if !errors.Is(err, w) {
						t.Errorf("error %q does not match %v", err, w)
					}
				}
				if !strings.Contains(err.Error(), tc.mention) {
					t.Errorf("error %q does not mention %q", err, tc.mention)
				}
				if after := e.stat(); after != before || len(e.keys()) != len(keysBefore) {
					t.Fatalf("rejected import changed the store: %+v → %+v", before, after)
				}
				if left, _ := os.ReadDir(spool); len(left) != 0 {
					t.Fatalf("import left %d temporary files", len(left))
				}
			})
		}
	}

	// The partial CAR itself is fine without Pin.
	e := stOpen(t, store.Options{})
	if _, err := e.s.ImportCAR(ctx, bytes.NewReader(stCAR(t, 1, []cid.Cid{partialRoot.Cid()}, partialRoot)), store.ImportOptions{}); err != nil {
		t.Fatalf("partial CAR without Pin: %v", err)
	}
}

func TestCARExportErrors(t *testing.T) {
	e := stOpen(t, store.Options{})
	ctx := context.Background()
	root, all := e.stFile(stRand(35, 200<<10), 16<<10, 4)
	var leafCID cid.Cid
	for _, c := range all {
		if c.Type() == cid.Raw {
			leafCID = c
		}
	}
	if err := e.s.Blockstore().DeleteBlock(ctx, leafCID); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{1, 2} {
		var buf bytes.Buffer
		err := e.s.ExportCAR(ctx, &buf, root, store.ExportOptions{Version: v})
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), leafCID.String()) || buf.Len() != 0 {
			t.Fatalf("v%d export of incomplete DAG: %v, %d bytes written", v, err, buf.Len())
		}
	}
	if err := e.s.ExportCAR(ctx, io.Discard, root, store.ExportOptions{Version: 3}); err == nil {
		t.Fatal("ExportCAR accepted version 3")
	}
}

func FuzzImportCAR(f *testing.F) {
	src := stOpen(f, store.Options{})
	root := src.stSampleDAG(40, 40<<10)
	f.Add(src.export(root, 1))
	f.Add(src.export(root, 2))
	leaf := stRaw([]byte("leaf"))
	forged, _ := blocks.NewBlockWithCid([]byte("forged"), leaf.Cid())
	f.Add(stCAR(f, 1, []cid.Cid{leaf.Cid()}, forged))
	f.Add(stCAR(f, 1, []cid.Cid{leaf.Cid()}, leaf, stCBOR(f, "x", leaf.Cid())))
	f.Add([]byte{})

	e := stOpen(f, store.Options{})
	spool := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		before, err := e.s.Stat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.s.ImportCAR(ctx, bytes.NewReader(data), store.ImportOptions{TempDir: spool})
		if err != nil {
			if after, _ := e.s.Stat(ctx); after != before {
				t.Fatalf("failed import (%v) changed the store: %+v → %+v", err, before, after)
			}
			return
		}
		// Success: every block of the CAR is stored and verifies.
		rd, rerr := car.NewBlockReader(bytes.NewReader(data))
		if rerr != nil {
			t.Fatalf("ImportCAR accepted what go-car cannot open: %v", rerr)
		}
		n := 0
		for {
			b, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("ImportCAR accepted a CAR go-car rejects: %v", err)
			}
			got, err := e.s.Blockstore().Get(ctx, b.Cid())
			if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
				t.Fatalf("imported block %s: %v", b.Cid(), err)
			}
			n++
		}
		if res.Blocks > n {
			t.Fatalf("ImportCAR reported %d blocks, the CAR has %d sections", res.Blocks, n)
		}
	})
}

// ExampleStore_ExportCAR exports a DAG as a CAR and imports it into another
// node's store, pinning its root.
func ExampleStore_ExportCAR() {
	ctx := context.Background()
	open := func() (*store.Store, func()) {
		dir, _ := os.MkdirTemp("", "example")
		db, err := kv.Open(dir, kv.Options{})
		if err != nil {
			panic(err)
		}
		return store.New(db, store.Options{}), func() { db.Close(); os.RemoveAll(dir) }
	}
	a, closeA := open()
	defer closeA()
	b, closeB := open()
	defer closeB()

	leaf := stRaw([]byte("hello, world\n"))
	if err := a.Blockstore().Put(ctx, leaf); err != nil {
		panic(err)
	}
	var car bytes.Buffer
	if err := a.ExportCAR(ctx, &car, leaf.Cid(), store.ExportOptions{Version: 2}); err != nil {
		panic(err)
	}
	res, err := b.ImportCAR(ctx, &car, store.ImportOptions{Pin: true, PinName: "greeting"})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Roots[0], res.Blocks, res.Bytes)
	pinned, _ := b.IsPinned(ctx, leaf.Cid())
	fmt.Println("pinned:", pinned)
	// Output:
	// bafkreiefh74toyvanxn7oiwe5pu53vtnr5r53lvjp5jbypwmednhzf3aea 1 13
	// pinned: true
}
