package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/iotest"

	chunk "github.com/ipfs/boxo/chunker"
)

// chunksOf runs spl to the end and returns its chunks (copied, since pooled
// chunks may be reused) and the error it stopped with.
func chunksOf(spl chunk.Splitter) ([][]byte, error) {
	var out [][]byte
	for {
		b, err := spl.NextBytes()
		if b != nil {
			out = append(out, bytes.Clone(b))
		}
		if err != nil {
			return out, err
		}
		if b == nil {
			return out, nil
		}
	}
}

// compareWithBoxo fails t unless pooledBuzhash cuts data (read through
// wrap) exactly as boxo's chunk.Buzhash does, chunk for chunk, and stops
// with the same error.
func compareWithBoxo(t testing.TB, data []byte, wrap func(io.Reader) io.Reader) {
	t.Helper()
	want, wantErr := chunksOf(chunk.NewBuzhash(wrap(bytes.NewReader(data))))
	got, gotErr := chunksOf(newPooledBuzhash(wrap(bytes.NewReader(data))))
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Fatalf("%d bytes: error %v, boxo's %v", len(data), gotErr, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("%d bytes: %d chunks, boxo cuts %d", len(data), len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%d bytes: chunk %d is %d bytes, boxo's is %d bytes (or differs)", len(data), i, len(got[i]), len(want[i]))
		}
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestPooledBuzhashMatchesBoxo: the chunker Add uses for buzhash cuts every
// input where boxo's cuts it, whatever the sizes (around the minimum and
// maximum chunk), the content (random, so cuts are content-defined;
// constant, so every cut is at the maximum) and however the reader
// delivers the bytes.
func TestPooledBuzhashMatchesBoxo(t *testing.T) {
	sizes := []int{0, 1, 31, 32, 33, buzMin - 33, buzMin - 32, buzMin - 1, buzMin, buzMin + 1,
		buzMin + 33, buzMax - 1, buzMax, buzMax + 1, buzMax + buzMin, 2*buzMax + 7, 5 << 20}
	contents := map[string]func(n int) []byte{
		"random": func(n int) []byte { return randomBytes(uint64(n), n) },
		"zeros":  func(n int) []byte { return make([]byte, n) },
		"repeated": func(n int) []byte {
			return bytes.Repeat(randomBytes(7, 4099), n/4099+1)[:n]
		},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data-err": iotest.DataErrReader,
	}
	for cname, content := range contents {
		for rname, wrap := range readers {
			t.Run(cname+"/"+rname, func(t *testing.T) {
				for _, n := range sizes {
					if rname == "one-byte" && n > buzMax+buzMin {
						continue // slow and adds nothing
					}
					compareWithBoxo(t, content(n), wrap)
				}
			})
		}
	}
}

// TestPooledBuzhashReadError: a read error other than EOF stops the chunker
// with that error, after the chunks boxo also returns.
func TestPooledBuzhashReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	data := randomBytes(3, 3<<20)
	for _, n := range []int64{0, buzMin - 1, buzMax, 1<<20 + 5} {
		wrap := func(r io.Reader) io.Reader {
			return io.MultiReader(io.LimitReader(r, n), iotest.ErrReader(boom))
		}
		compareWithBoxo(t, data, wrap)
		_, err := chunksOf(newPooledBuzhash(wrap(bytes.NewReader(data))))
		if !errors.Is(err, boom) {
			t.Fatalf("after %d bytes: error %v, want %v", n, err, boom)
		}
	}
}

func FuzzPooledBuzhashMatchesBoxo(f *testing.F) {
	f.Add(uint64(1), uint32(0), uint8(0))
	f.Add(uint64(2), uint32(buzMin), uint8(1))
	f.Add(uint64(3), uint32(buzMax+1), uint8(2))
	f.Add(uint64(4), uint32(3<<20), uint8(3))
	f.Fuzz(func(t *testing.T, seed uint64, n uint32, mode uint8) {
		size := int(n % (4 << 20))
		data := randomBytes(seed, size)
		if mode&4 != 0 { // low-entropy runs: cuts at the maximum and in between
			for i := 0; i < len(data); i += 1 << 16 {
				clear(data[i:min(len(data), i+1<<15)])
			}
		}
		wrap := func(r io.Reader) io.Reader { return r }
		switch mode % 4 {
		case 1:
			wrap = iotest.HalfReader
		case 2:
			wrap = iotest.DataErrReader
		case 3:
			wrap = func(r io.Reader) io.Reader { return bufioSized{r, int(seed%8191) + 1} }
		}
		compareWithBoxo(t, data, wrap)
	})
}

// bufioSized reads at most n bytes per Read.
type bufioSized struct {
	r io.Reader
	n int
}

func (b bufioSized) Read(p []byte) (int, error) { return b.r.Read(p[:min(len(p), b.n)]) }

// TestAddBuzhashReusesChunks: adding a buzhash-chunked file allocates far
// less than the file's size, because its chunks come from the buffer pool
// and go back to it once written (a fresh buffer per chunk allocated as
// much as the file: ~540 MB per closure import). The DAG is still Kubo's
// (TestAddMatchesKubo / the golden tests).
func TestAddBuzhashReusesChunks(t *testing.T) {
	s := New(openKV(t), Options{})
	ctx := context.Background()
	const size = 48 << 20
	// Warm up: the pool, the database's first tables and value log.
	if _, err := s.Add(ctx, bytes.NewReader(randomBytes(1, 8<<20)), AddOptions{Chunker: "buzhash"}); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(2, size)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := s.Add(ctx, bytes.NewReader(data), AddOptions{Chunker: "buzhash"}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("add of %d MiB with buzhash allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
	if alloc > size/2 {
		t.Fatalf("add of %d MiB with buzhash allocated %.1f MiB: chunks are not reused", size>>20, float64(alloc)/(1<<20))
	}
}
