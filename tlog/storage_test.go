package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/tessera/api/layout"
)

// TestEntryRuns commits batches of awkward sizes (runs split at bundle
// boundaries, batches spanning several bundles, empty entries) and reads every
// entry back one by one, in ranges, and as entry bundles over HTTP; then it
// checks the stored run keys and that a gap between runs is reported as
// ErrCorrupt.
func TestEntryRuns(t *testing.T) {
	l, db, _ := newTestLog(t, Options{})
	ctx := context.Background()
	var entries [][]byte
	for _, n := range []int{1, 255, 2, 300, 700, 1, 253} {
		batch := make([]*appendReq, n)
		for i := range batch {
			e := entryN(len(entries))
			if len(entries)%97 == 0 {
				e = []byte{} // empty entries are allowed
			}
			entries = append(entries, e)
			batch[i] = newAppendReq(e)
		}
		// No Append is running, so the sequencer is idle and commit may run here.
		start, err := l.commit(batch)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(len(entries) - n); start != want {
			t.Fatalf("batch of %d starts at %d, want %d", n, start, want)
		}
	}
	size := uint64(len(entries))
	if l.Size() != size {
		t.Fatalf("Size() = %d, want %d", l.Size(), size)
	}
	for i, want := range entries {
		got, err := l.Entry(ctx, uint64(i))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Entry(%d) = %q, %v; want %q", i, got, err, want)
		}
	}
	for _, r := range [][2]uint64{{0, 0}, {0, 1}, {0, size}, {1, 256}, {255, 257}, {256, 512}, {257, 258}, {300, 1100}, {size - 1, size}, {size, size}} {
		got, err := l.Entries(ctx, r[0], r[1])
		if err != nil {
			t.Fatalf("Entries(%d, %d): %v", r[0], r[1], err)
		}
		if len(got) != int(r[1]-r[0]) {
			t.Fatalf("Entries(%d, %d): %d entries", r[0], r[1], len(got))
		}
		for j, e := range got {
			if !bytes.Equal(e, entries[r[0]+uint64(j)]) {
				t.Fatalf("Entries(%d, %d)[%d] = %q, want %q", r[0], r[1], j, e, entries[r[0]+uint64(j)])
			}
		}
	}

	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	for n := uint64(0); n*tileWidth < size; n++ {
		w := min(size-n*tileWidth, tileWidth)
		var want []byte
		for _, e := range entries[n*tileWidth : n*tileWidth+w] {
			want = binary.BigEndian.AppendUint16(want, uint16(len(e)))
			want = append(want, e...)
		}
		p := layout.EntriesPath(n, uint8(w%tileWidth))
		resp, err := http.Get(srv.URL + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("GET %s: %s, %d bytes; want 200, %d bytes", p, resp.Status, len(got), len(want))
		}
	}

	// Runs: one key per batch and bundle, starting at every bundle start.
	var starts []uint64
	err := db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = pfxRun
		io.PrefetchValues = false
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			starts = append(starts, binary.BigEndian.Uint64(it.Item().Key()[len(pfxRun):]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStarts := []uint64{0, 1, 256, 258, 512, 558, 768, 1024, 1258, 1259, 1280}
	if fmt.Sprint(starts) != fmt.Sprint(wantStarts) {
		t.Fatalf("run keys start at %v, want %v", starts, wantStarts)
	}

	// Remove a run: reads across the gap must fail as corrupt, not return
	// short or shifted data.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(runKey(558)) }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"entry in removed run", func() error { _, err := l.Entry(ctx, 600); return err }},
		{"range across removed run", func() error { _, err := l.Entries(ctx, 500, 800); return err }},
	} {
		if err := tc.err(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
}
