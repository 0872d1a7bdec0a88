package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	chunk "github.com/ipfs/boxo/chunker"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	mdtest "github.com/ipfs/boxo/ipld/merkledag/test"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// ufsOpen opens a real badger store in dir.
func ufsOpen(t testing.TB, dir string) (*store.Store, *badger.DB) {
	t.Helper()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatalf("kv.Open: %v", err)
	}
	return store.New(db, store.Options{}), db
}

// ufsStore opens a fresh store in a temporary directory, closed at cleanup.
func ufsStore(t testing.TB) (*store.Store, *badger.DB) {
	t.Helper()
	s, db := ufsOpen(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	return s, db
}

// mod251 returns n bytes with byte i = i mod 251, the content of the files
// in testdata/kubo-golden.tsv.
func mod251(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

type goldenRow struct {
	file    string
	size    int
	chunker string
	want    string
}

func readGolden(t *testing.T) []goldenRow {
	t.Helper()
	f, err := os.Open("../testdata/kubo-golden.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []goldenRow
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		if line == 0 || sc.Text() == "" {
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 4 {
			t.Fatalf("golden line %d: %d columns", line+1, len(cols))
		}
		size, err := strconv.Atoi(cols[1])
		if err != nil {
			t.Fatalf("golden line %d: %v", line+1, err)
		}
		r := goldenRow{file: cols[0], size: size, want: cols[3]}
		for _, arg := range strings.Fields(cols[2]) {
			switch {
			case arg == "--cid-version=1": // CIDv1 + raw leaves: what Add does
			case strings.HasPrefix(arg, "--chunker="):
				r.chunker = strings.TrimPrefix(arg, "--chunker=")
			default:
				t.Fatalf("golden line %d: unhandled kubo argument %q", line+1, arg)
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 20 {
		t.Fatalf("only %d golden rows", len(rows))
	}
	return rows
}

func TestAddKuboGolden(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	for _, r := range readGolden(t) {
		t.Run(r.file+"/"+r.chunker, func(t *testing.T) {
			data := mod251(r.size)
			got, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{Chunker: r.chunker})
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if got.String() != r.want {
				t.Fatalf("CID = %s, Kubo gives %s", got, r.want)
			}
			f, err := s.Cat(ctx, got)
			if err != nil {
				t.Fatalf("Cat: %v", err)
			}
			defer f.Close()
			if f.Size() != int64(r.size) {
				t.Errorf("Size = %d, want %d", f.Size(), r.size)
			}
			back, err := io.ReadAll(f)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(back, data) {
				t.Fatalf("cat returned %d bytes differing from the %d added", len(back), len(data))
			}
		})
	}
}

func TestAddFileMatchesAdd(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	var paths []string
	var want []cid.Cid
	for i, n := range []int{0, 1000, 262145, 600_000} {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		data := mod251(n)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		c, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{Chunker: "size-100000"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c)
	}
	got, err := s.AddFiles(ctx, paths, store.AddOptions{Chunker: "size-100000"})
	if err != nil {
		t.Fatalf("AddFiles: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("AddFiles = %v, Add gives %v", got, want)
	}

	// A directory and a missing file fail, naming the path; earlier files
	// are returned.
	for _, tc := range []struct {
		name string
		bad  string
		is   error
	}{
		{"directory", dir, store.ErrIsDirectory},
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AddFiles(ctx, []string{paths[1], tc.bad}, store.AddOptions{})
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("error %q does not name %s", err, tc.bad)
			}
			if len(got) != 1 {
				t.Errorf("got %d CIDs before the failure, want 1", len(got))
			}
		})
	}
}

func TestAddBadChunker(t *testing.T) {
	s, _ := ufsStore(t)
	for _, spec := range []string{"size-0", "size-", "size-x", "size-2097153", "rabin", "rabin-16-32-64", "fixed", "buzhash-1", "size-1-2"} {
		t.Run(spec, func(t *testing.T) {
			_, err := s.Add(context.Background(), strings.NewReader("x"), store.AddOptions{Chunker: spec})
			var ce *store.ChunkerError
			if !errors.As(err, &ce) || !errors.Is(err, store.ErrBadChunker) {
				t.Fatalf("err = %v, want *ChunkerError", err)
			}
			if ce.Spec != spec || !strings.Contains(err.Error(), strconv.Quote(spec)) {
				t.Errorf("error %q does not name spec %q", err, spec)
			}
		})
	}
}

func TestParseChunker(t *testing.T) {
	for _, tc := range []struct {
		spec, want string
		ok         bool
	}{
		{"", "size-262144", true},
		{"default", "size-262144", true},
		{"size-262144", "size-262144", true},
		{"size-1", "size-1", true},
		{"size-2096896", "size-2096896", true}, // chunker.ChunkSizeLimit
		{"size-2096897", "", false},
		{"size--1", "", false},
		{"buzhash", "buzhash", true},
		{"Buzhash", "", false},
		{"rabin-262144", "", false},
	} {
		c, err := store.ParseChunker(tc.spec)
		if (err == nil) != tc.ok {
			t.Errorf("ParseChunker(%q) err = %v, want ok=%v", tc.spec, err, tc.ok)
			continue
		}
		if tc.ok && c.String() != tc.want {
			t.Errorf("ParseChunker(%q) = %q, want %q", tc.spec, c, tc.want)
		}
	}
}

func TestAddProgressAndPin(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	data := mod251(1_000_000)
	var calls int
	var last int64
	c, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{
		Pin: true,
		Progress: func(n int64) {
			calls++
			if n < last {
				t.Errorf("progress went back from %d to %d", last, n)
			}
			last = n
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) || calls == 0 {
		t.Errorf("progress ended at %d after %d calls, want %d", last, calls, len(data))
	}
	pinned, err := s.IsPinned(ctx, c)
	if err != nil || !pinned {
		t.Errorf("IsPinned(%s) = %v, %v; want pinned", c, pinned, err)
	}
	c2, err := s.Add(ctx, bytes.NewReader(data[:1000]), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pinned, err := s.IsPinned(ctx, c2); err != nil || pinned {
		t.Errorf("IsPinned(%s) = %v, %v without Pin", c2, pinned, err)
	}
}

type failingReader struct {
	r     io.Reader
	after int64
	n     int64
}

var errBoom = errors.New("boom: source failed")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, errBoom
	}
	if int64(len(p)) > f.after-f.n {
		p = p[:f.after-f.n]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

func TestAddSourceErrorAndCancel(t *testing.T) {
	s, _ := ufsStore(t)
	data := mod251(5_000_000)
	_, err := s.Add(context.Background(), &failingReader{r: bytes.NewReader(data), after: 3_000_000}, store.AddOptions{Pin: true})
	if !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	pins, err := s.Pins(context.Background())
	if err != nil || len(pins) != 0 {
		t.Fatalf("pins after failed add = %v, %v; want none", pins, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled add: err = %v, want context.Canceled", err)
	}
}

func TestCatReadSeekReadAt(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	data := mod251(3_000_001)
	for _, chunker := range []string{"", "size-65536", "buzhash"} {
		t.Run(chunker, func(t *testing.T) {
			c, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{Chunker: chunker})
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.Cat(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, tc := range []struct {
				off    int64
				whence int
				n      int
				want   int64 // absolute position
			}{
				{0, io.SeekStart, 10, 0},
				{262140, io.SeekStart, 10, 262140},
				{100, io.SeekCurrent, 70000, 262140 + 10 + 100},
				{-5, io.SeekEnd, 5, int64(len(data)) - 5},
				{2_999_999, io.SeekStart, 2, 2_999_999},
			} {
				pos, err := f.Seek(tc.off, tc.whence)
				if err != nil || pos != tc.want {
					t.Fatalf("Seek(%d, %d) = %d, %v; want %d", tc.off, tc.whence, pos, err, tc.want)
				}
				buf := make([]byte, tc.n)
				if _, err := io.ReadFull(f, buf); err != nil {
					t.Fatalf("read %d at %d: %v", tc.n, pos, err)
				}
				if !bytes.Equal(buf, data[pos:pos+int64(tc.n)]) {
					t.Fatalf("wrong bytes at %d", pos)
				}
			}
			// ReadAt does not move the Read offset.
			if _, err := f.Seek(10, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1000)
			if n, err := f.ReadAt(buf, 1_500_000); n != 1000 || err != nil || !bytes.Equal(buf, data[1_500_000:1_501_000]) {
				t.Fatalf("ReadAt = %d, %v or wrong bytes", n, err)
			}
			if n, err := f.ReadAt(buf, int64(len(data))-10); n != 10 || err != io.EOF {
				t.Fatalf("ReadAt at end-10 = %d, %v; want 10, EOF", n, err)
			}
			if n, err := f.Read(buf[:5]); n != 5 || err != nil || !bytes.Equal(buf[:5], data[10:15]) {
				t.Fatalf("Read after ReadAt = %d, %v or wrong bytes", n, err)
			}
		})
	}
}

func TestCatRange(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	data := mod251(1_000_000)
	big, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	small, err := s.Add(ctx, bytes.NewReader(data[:1000]), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if small.Prefix().Codec != cid.Raw {
		t.Fatalf("small file %s is not a raw block", small)
	}
	for _, tc := range []struct {
		name        string
		c           cid.Cid
		size        int64
		off, length int64
		wantErr     bool
	}{
		{"whole", big, 1_000_000, 0, -1, false},
		{"middle", big, 1_000_000, 262_000, 300_000, false},
		{"tail", big, 1_000_000, 999_000, -1, false},
		{"past end cut", big, 1_000_000, 999_000, 5000, false},
		{"at end", big, 1_000_000, 1_000_000, -1, false},
		{"zero length", big, 1_000_000, 5, 0, false},
		{"raw leaf", small, 1000, 10, 20, false},
		{"offset past end", big, 1_000_000, 1_000_001, -1, true},
		{"negative offset", big, 1_000_000, -1, 10, true},
		{"bad length", big, 1_000_000, 0, -2, true},
		{"raw past end", small, 1000, 2000, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := s.CatRange(ctx, tc.c, tc.off, tc.length)
			if tc.wantErr {
				var re *store.RangeError
				if !errors.As(err, &re) || !errors.Is(err, store.ErrRange) || re.Size != tc.size {
					t.Fatalf("err = %v, want *RangeError with size %d", err, tc.size)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			end := tc.size
			if tc.length >= 0 && tc.off+tc.length < end {
				end = tc.off + tc.length
			}
			if !bytes.Equal(got, data[tc.off:end]) {
				t.Fatalf("got %d bytes, want data[%d:%d]", len(got), tc.off, end)
			}
		})
	}
}

// corrupt flips a byte of block c behind the store's back: in its pack file
// if it is stored in one, else in its badger value.
func corrupt(t *testing.T, db *badger.DB, c cid.Cid) {
	t.Helper()
	key := append(append([]byte{}, kv.PrefixBlocks...), c.Hash()...)
	var ref []byte // the entry's pack reference, if packed
	err := db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		if it.UserMeta() != 0 {
			ref = v
			return nil
		}
		v[len(v)/2] ^= 0x01
		return txn.Set(key, v)
	})
	if err != nil {
		t.Fatalf("corrupt %s: %v", c, err)
	}
	if ref == nil {
		return
	}
	// Pack reference: pack id (u32), offset (u64), length (u32), big-endian.
	if len(ref) != 16 {
		t.Fatalf("corrupt %s: pack reference of %d bytes", c, len(ref))
	}
	path := filepath.Join(kv.PacksDir(db), fmt.Sprintf("%08d.pack", binary.BigEndian.Uint32(ref)))
	at := int64(binary.BigEndian.Uint64(ref[4:])) + int64(binary.BigEndian.Uint32(ref[12:]))/2
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestCatCorruptBlock(t *testing.T) {
	ctx := context.Background()
	data := mod251(3_000_000)

	t.Run("middle leaf", func(t *testing.T) {
		s, db := ufsStore(t)
		root, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{})
		if err != nil {
			t.Fatal(err)
		}
		blk, err := s.Blockstore().Get(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		nd, err := dag.DecodeProtobufBlock(blk)
		if err != nil {
			t.Fatal(err)
		}
		links := nd.Links()
		if len(links) != 12 {
			t.Fatalf("root has %d links, want 12", len(links))
		}
		bad := links[6].Cid
		corrupt(t, db, bad)

		f, err := s.Cat(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		var ce *store.CorruptBlockError
		if !errors.As(err, &ce) || !ce.Cid.Equals(bad) {
			t.Fatalf("read err = %v, want *CorruptBlockError for %s", err, bad)
		}
		if !strings.Contains(err.Error(), bad.String()) {
			t.Errorf("error %q does not name %s", err, bad)
		}
		if len(got) > 6*262144 || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("read returned %d bytes before the error; must be an intact prefix before leaf 6", len(got))
		}
		// ReadAt and CatRange over the bad leaf fail the same way.
		if _, err := f.ReadAt(make([]byte, 10), 6*262144+5); !errors.As(err, &ce) {
			t.Fatalf("ReadAt err = %v, want *CorruptBlockError", err)
		}
		rc, err := s.CatRange(ctx, root, 6*262144, 100)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("CatRange err = %v, want ErrCorrupt", err)
		}
	})

	t.Run("raw root", func(t *testing.T) {
		s, db := ufsStore(t)
		root, err := s.Add(ctx, bytes.NewReader(data[:5000]), store.AddOptions{})
		if err != nil {
			t.Fatal(err)
		}
		corrupt(t, db, root)
		_, err = s.Cat(ctx, root)
		var ce *store.CorruptBlockError
		if !errors.As(err, &ce) || !ce.Cid.Equals(root) {
			t.Fatalf("Cat err = %v, want *CorruptBlockError for %s", err, root)
		}
	})
}

func TestCatMissingAndDirectory(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	absent, _ := cid.Decode("bafkreidogqfzz75tpkmjzjke425xqcrmpcib2p5tg44hnbirumdbpl5adu")
	if _, err := s.Cat(ctx, absent); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Cat of absent block: err = %v, want ErrNotFound", err)
	}
	// A UnixFS directory node is not a file.
	dir := dag.NodeWithData([]byte{0x08, 0x01}) // unixfs Data{Type: Directory}
	dir.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: 0x12})
	if err := s.Blockstore().Put(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cat(ctx, dir.Cid()); err == nil || !strings.Contains(err.Error(), dir.Cid().String()) {
		t.Fatalf("Cat of a directory: err = %v, want an error naming it", err)
	}
}

// FuzzChunkerSpec checks that ParseChunker either rejects a spec with a
// *ChunkerError naming it, or yields a chunker whose chunks are non-empty,
// within boxo's size limit and concatenate back to the input.
func FuzzChunkerSpec(f *testing.F) {
	for _, s := range []string{"", "default", "size-262144", "size-1", "size-0", "size--1",
		"size-2096896", "size-2096897", "size-+7", "buzhash", "rabin", "rabin-16-32-64", "size-1-2", "x"} {
		f.Add(s)
	}
	input := mod251(300_000)
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := store.ParseChunker(spec)
		if err != nil {
			var ce *store.ChunkerError
			if !errors.As(err, &ce) || ce.Spec != spec || !errors.Is(err, store.ErrBadChunker) {
				t.Fatalf("ParseChunker(%q) err = %#v, want *ChunkerError naming it", spec, err)
			}
			return
		}
		if _, err := store.ParseChunker(c.String()); err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c, spec, err)
		}
		spl := c.Splitter(bytes.NewReader(input))
		var back []byte
		for {
			b, err := spl.NextBytes()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 || len(b) > 2096896 {
				t.Fatalf("chunk of %d bytes", len(b))
			}
			back = append(back, b...)
		}
		if !bytes.Equal(back, input) {
			t.Fatalf("chunks of %q do not concatenate to the input", spec)
		}
	})
}

// prngReader streams n pseudo-random bytes (splitmix64), deterministic for a
// seed, without holding them in memory.
type prngReader struct {
	state uint64
	n     int64
}

func newPRNG(seed uint64, n int64) *prngReader { return &prngReader{state: seed, n: n} }

func (r *prngReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	s := r.state
	i := 0
	for ; i+8 <= len(p); i += 8 {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(p[i:], z^(z>>31))
	}
	for ; i < len(p); i++ {
		s += 0x9e3779b97f4a7c15
		p[i] = byte(s >> 56)
	}
	r.state = s
	r.n -= int64(len(p))
	return len(p), nil
}

const oodEnv = "STORE_TEST_OUT_OF_DISK_DIR"

// TestHelperProcessOutOfDisk is not a test: TestAddOutOfDisk runs the test
// binary again with only this function selected and oodEnv set. It opens
// the store, limits the size of any file it grows (RLIMIT_FSIZE; Go ignores
// SIGXFSZ, so the write fails with EFBIG like on a full disk) and adds a
// stream far bigger than the limit with Pin set. It prints the add's error
// and exits 0 if the add failed, 3 if it wrongly succeeded.
func TestHelperProcessOutOfDisk(t *testing.T) {
	dir := os.Getenv(oodEnv)
	if dir == "" {
		t.Skip("helper process for TestAddOutOfDisk")
	}
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		fmt.Printf("OPEN-ERROR: %v\n", err)
		os.Exit(4)
	}
	// The 256 KiB leaves go to a pack file, which hits the limit at 40 MiB
	// (a multiple of 4096, so the O_DIRECT write stops cleanly with EFBIG).
	// The limit must also lie above what opening badger needed (memtable
	// logs of 2 x 16 MiB) and it still lies below the 2 x 32 MiB a value log
	// file is created with, in case the store is run with packs off. It is
	// set after opening because badger's Open itself creates a value log.
	lim := uint64(40 << 20)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		fmt.Printf("SETRLIMIT-ERROR: %v\n", err)
		os.Exit(5)
	}
	s := store.New(db, store.Options{})
	c, err := s.Add(context.Background(), newPRNG(1, 512<<20), store.AddOptions{Pin: true})
	if err == nil {
		fmt.Printf("ADDED: %s\n", c)
		os.Exit(3)
	}
	if !errors.Is(err, store.ErrNoSpace) {
		fmt.Printf("NOT-ErrNoSpace: %v\n", err)
		os.Exit(6)
	}
	fmt.Printf("ADD-ERROR: %v\n", err)
	if err := db.Close(); err != nil {
		fmt.Printf("CLOSE-ERROR: %v\n", err)
	}
	os.Exit(0)
}

func TestAddOutOfDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("writes up to 40 MiB")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcessOutOfDisk$", "-test.v")
	cmd.Env = append(os.Environ(), oodEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !bytes.Contains(out, []byte("ADD-ERROR: add: ")) || !bytes.Contains(out, []byte("out of disk space")) {
		t.Fatalf("child did not report a clear out-of-space error")
	}

	// The store opens again, holds the partial add's blocks unpinned, and
	// GC collects them.
	s, db := ufsOpen(t, dir)
	defer db.Close()
	bg := context.Background()
	pins, err := s.Pins(bg)
	if err != nil || len(pins) != 0 {
		t.Fatalf("pins after failed add = %v, %v; want none", pins, err)
	}
	res, err := s.GC(bg)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if res.Removed == 0 || res.Kept != 0 {
		t.Fatalf("GC = %+v, want the partial blocks removed and none kept", res)
	}
	// And it still works.
	c, err := s.Add(bg, bytes.NewReader(mod251(1_000_000)), store.AddOptions{Pin: true})
	if err != nil {
		t.Fatalf("add after reopen: %v", err)
	}
	f, err := s.Cat(bg, c)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := io.ReadAll(f); err != nil || !bytes.Equal(got, mod251(1_000_000)) {
		t.Fatalf("cat after reopen: %v", err)
	}
}

// refCid is the root CID boxo's importer gives data with Kubo's
// --cid-version=1 settings, built the plain way (sequential, in memory).
func refCid(t *testing.T, data []byte, spec string) cid.Cid {
	t.Helper()
	spl, err := chunk.FromString(bytes.NewReader(data), spec)
	if err != nil {
		t.Fatal(err)
	}
	p := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1},
		Dagserv:    mdtest.Mock(),
	}
	db, err := p.New(spl)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

// TestAddMatchesBoxoImporter compares Add with boxo's plain importer around
// every size where the shape changes: the single-chunk fast path limits,
// chunk boundaries and the 174-link boundary of the balanced layout.
func TestAddMatchesBoxoImporter(t *testing.T) {
	s, _ := ufsStore(t)
	ctx := context.Background()
	rnd := make([]byte, 5<<20)
	newPRNG(3, int64(len(rnd))).Read(rnd)
	for _, tc := range []struct {
		spec  string
		sizes []int
	}{
		{"size-262144", []int{0, 1, 262143, 262144, 262145, 524288, 524289}},
		{"size-1000", []int{999, 1000, 1001, 174 * 1000, 174*1000 + 1, 174*174*1000 + 1}},
		{"size-1", []int{1, 2, 175}},
		{"buzhash", []int{1, 128<<10 - 1, 128 << 10, 128<<10 + 1, 512 << 10, 3 << 20}},
	} {
		for _, n := range tc.sizes {
			t.Run(fmt.Sprintf("%s/%d", tc.spec, n), func(t *testing.T) {
				var data []byte
				if n > len(rnd) {
					data = mod251(n)
				} else {
					data = rnd[:n]
				}
				want := refCid(t, data, tc.spec)
				got, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{Chunker: tc.spec})
				if err != nil {
					t.Fatal(err)
				}
				if !got.Equals(want) {
					t.Fatalf("Add = %s, boxo importer gives %s", got, want)
				}
			})
		}
	}
}
