package tlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

type testKeys struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKeys(t testing.TB, name string) testKeys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{s, v}
}

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newTestLog opens a log in a fresh on-disk badger store.
func newTestLog(t testing.TB, o Options) (*Log, *badger.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db := openDB(t, dir)
	if o.Signer == nil {
		o.Signer = newKeys(t, "example.com/test-log").signer
	}
	l, err := Open(db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	return l, db, dir
}

func entryN(i int) []byte { return []byte(fmt.Sprintf("entry %d", i)) }

// refRoot computes the RFC 6962 root of entries independently of the log.
func refRoot(entries [][]byte) []byte {
	h := rfc6962.DefaultHasher
	var rec func(es [][]byte) []byte
	rec = func(es [][]byte) []byte {
		if len(es) == 1 {
			return h.HashLeaf(es[0])
		}
		k := 1
		for k*2 < len(es) {
			k *= 2
		}
		return h.HashChildren(rec(es[:k]), rec(es[k:]))
	}
	if len(entries) == 0 {
		return h.EmptyRoot()
	}
	return rec(entries)
}

func TestAppendRootsAndProofs(t *testing.T) {
	ctx := context.Background()
	keys := newKeys(t, "example.com/test-log")
	l, _, _ := newTestLog(t, Options{Signer: keys.signer})
	var entries [][]byte
	checkpoints := map[uint64]SignedCheckpoint{}
	sizes := []int{1, 2, 3, 7, 255, 256, 257, 300, 511, 512, 513, 1000}
	for _, want := range sizes {
		for len(entries) < want {
			e := entryN(len(entries))
			idx, err := l.Append(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if idx != uint64(len(entries)) {
				t.Fatalf("Append returned index %d, want %d", idx, len(entries))
			}
			entries = append(entries, e)
		}
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, err := VerifyCheckpoint(cp.Note, keys.verifier)
		if err != nil {
			t.Fatalf("size %d: %v", want, err)
		}
		if v.Size != uint64(want) || !bytes.Equal(v.Hash, refRoot(entries)) || v.Origin != "example.com/test-log" {
			t.Fatalf("checkpoint at %d: size %d origin %q root %x, want root %x", want, v.Size, v.Origin, v.Hash, refRoot(entries))
		}
		checkpoints[v.Size] = v
		r, err := l.RootAt(ctx, v.Size)
		if err != nil || !bytes.Equal(r, v.Hash) {
			t.Fatalf("RootAt(%d) = %x, %v", v.Size, r, err)
		}
	}
	h := rfc6962.DefaultHasher
	for size, cp := range checkpoints {
		for _, i := range []uint64{0, 1, size / 2, size - 1} {
			if i >= size {
				continue
			}
			p, err := l.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(entries[i]), p, cp.Hash); err != nil {
				t.Errorf("inclusion %d in %d: %v", i, size, err)
			}
			idx, p2, err := l.InclusionProofByLeafHash(ctx, h.HashLeaf(entries[i]), size)
			if err != nil || idx != i {
				t.Fatalf("by leaf hash: index %d, %v; want %d", idx, err, i)
			}
			if err := proof.VerifyInclusion(h, idx, size, h.HashLeaf(entries[i]), p2, cp.Hash); err != nil {
				t.Errorf("inclusion by hash %d in %d: %v", i, size, err)
			}
		}
		for old, ocp := range checkpoints {
			if old > size {
				continue
			}
			p, err := l.ConsistencyProof(ctx, old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(h, old, size, p, ocp.Hash, cp.Hash); err != nil {
				t.Errorf("consistency %d→%d: %v", old, size, err)
			}
		}
	}
	for i := range entries {
		got, err := l.Entry(ctx, uint64(i))
		if err != nil || !bytes.Equal(got, entries[i]) {
			t.Fatalf("Entry(%d) = %q, %v", i, got, err)
		}
	}
	got, err := l.Entries(ctx, 250, 260)
	if err != nil || len(got) != 10 || !bytes.Equal(got[0], entries[250]) {
		t.Fatalf("Entries(250,260): %d entries, %v", len(got), err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	l, _, _ := newTestLog(t, Options{})
	for i := range 10 {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"entry too large", func() error { _, err := l.Append(ctx, make([]byte, MaxEntrySize+1)); return err }(), ErrEntryTooLarge},
		{"entry beyond size", func() error { _, err := l.Entry(ctx, 10); return err }(), ErrNotFound},
		{"inclusion index beyond size", func() error { _, err := l.InclusionProof(ctx, 5, 5); return err }(), ErrBadRange},
		{"inclusion size beyond log", func() error { _, err := l.InclusionProof(ctx, 1, 11); return err }(), ErrBadRange},
		{"consistency old > new", func() error { _, err := l.ConsistencyProof(ctx, 6, 5); return err }(), ErrBadRange},
		{"leaf hash unknown", func() error { _, _, err := l.InclusionProofByLeafHash(ctx, make([]byte, 32), 0); return err }(), ErrNotFound},
		{"leaf hash short", func() error { _, _, err := l.InclusionProofByLeafHash(ctx, make([]byte, 3), 0); return err }(), ErrBadRange},
		{"entries bad range", func() error { _, err := l.Entries(ctx, 3, 11); return err }(), ErrBadRange},
		{"no signer", func() error { _, err := Open(nil, Options{}); return err }(), ErrNoSigner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("got %v, want %v", tt.err, tt.want)
			}
		})
	}
	l.Close()
	if _, err := l.Append(ctx, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}

func TestVerifyCheckpointRejects(t *testing.T) {
	ctx := context.Background()
	keys := newKeys(t, "example.com/test-log")
	other := newKeys(t, "example.com/test-log")
	l, _, _ := newTestLog(t, Options{Signer: keys.signer})
	l.Append(ctx, []byte("x"))
	cp, _ := l.Checkpoint(ctx)
	tampered := bytes.Replace(cp.Note, []byte("\n1\n"), []byte("\n2\n"), 1)
	tests := []struct {
		name string
		note []byte
		v    note.Verifier
		want error
	}{
		{"wrong key", cp.Note, other.verifier, ErrCheckpointSig},
		{"tampered size", tampered, keys.verifier, ErrCheckpointSig},
		{"garbage", []byte("hello"), keys.verifier, ErrCheckpointForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyCheckpoint(tt.note, tt.v)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReopen checks that the tree, its tiles and the checkpoint survive a
// clean reopen and that the size never regresses.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	keys := newKeys(t, "example.com/test-log")
	dir := t.TempDir()
	var entries [][]byte
	var last SignedCheckpoint
	for round := range 4 {
		db := openDB(t, dir)
		l, err := Open(db, Options{Signer: keys.signer})
		if err != nil {
			t.Fatal(err)
		}
		cp, _ := l.Checkpoint(ctx)
		if cp.Size != last.Size || (last.Note != nil && !bytes.Equal(cp.Hash, last.Hash)) {
			t.Fatalf("round %d: reopened at size %d root %x, closed at %d %x", round, cp.Size, cp.Hash, last.Size, last.Hash)
		}
		for range 200 + round*37 {
			e := entryN(len(entries))
			if _, err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		last, _ = l.Checkpoint(ctx)
		if !bytes.Equal(last.Hash, refRoot(entries)) {
			t.Fatalf("round %d: root mismatch at size %d", round, last.Size)
		}
		l.Close()
		db.Close()
	}
}

func TestConcurrentAppendsBatch(t *testing.T) {
	ctx := context.Background()
	l, _, _ := newTestLog(t, Options{MaxBatch: 64})
	const writers, per = 32, 40
	var mu sync.Mutex
	got := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				e := []byte(fmt.Sprintf("w%d-%d", w, i))
				idx, err := l.Append(ctx, e)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if _, dup := got[idx]; dup {
					t.Errorf("index %d handed out twice", idx)
				}
				got[idx] = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if l.Size() != writers*per || len(got) != writers*per {
		t.Fatalf("size %d, %d acknowledged, want %d", l.Size(), len(got), writers*per)
	}
	for idx, e := range got {
		stored, err := l.Entry(ctx, idx)
		if err != nil || !bytes.Equal(stored, e) {
			t.Fatalf("entry %d = %q, %v; want %q", idx, stored, err, e)
		}
	}
}
