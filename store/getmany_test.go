package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/agentix/agentix-store/store"
)

// TestCatNamesFirstCorruptBlock: when several blocks of a file are corrupt
// (a pack cut short in the middle of one leaf loses every leaf after it),
// reading the file fails naming the first corrupt block in file order, the
// one the read reached, whichever of the prefetched blocks failed first.
func TestCatNamesFirstCorruptBlock(t *testing.T) {
	for _, o := range []store.Options{{}, {NoDirectIO: true}} {
		for round := range 8 {
			e := stOpen(t, o)
			ctx := context.Background()
			const leaves = 8
			data := stRand(uint64(40+round), leaves*262144)
			root, err := e.s.Add(ctx, bytes.NewReader(data), store.AddOptions{})
			if err != nil {
				t.Fatal(err)
			}
			first := stRaw(data[2*262144 : 3*262144]) // leaves 2..7 lost
			path, off := findInPacks(t, e.dir, first.RawData())
			if err := os.Truncate(path, off+262144/2); err != nil {
				t.Fatal(err)
			}
			f, err := e.s.Cat(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			var ce *store.CorruptBlockError
			if !errors.As(err, &ce) || !ce.Cid.Equals(first.Cid()) {
				t.Fatalf("NoDirectIO %v, round %d: Cat: err = %v, want *CorruptBlockError for %s (leaf 2)", o.NoDirectIO, round, err, first.Cid())
			}
			if len(got) > 2*262144 || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("Cat returned %d bytes before the error, want an intact prefix of leaves 0-1", len(got))
			}
		}
	}
}
