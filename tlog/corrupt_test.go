package tlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestCorruptEntryNotServed flips one bit of one stored entry in the badger
// database, and checks that the log never returns or
// serves the altered entry: Entry, Entries and the entry bundle over HTTP
// all fail naming the entry's index, while the other bundles and the tiles
// are still served.
func TestCorruptEntryNotServed(t *testing.T) {
	l, db, _ := newTestLog(t, Options{})
	ctx := context.Background()
	const size, bad = 600, 300
	for i := range size {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	// One lone writer: every entry is a run of its own. Flip one bit of
	// entry 300's stored bytes underneath the log, as a bad disk would.
	err := db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(runKey(bad))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		if want := append([]byte{0, byte(len(entryN(bad)))}, entryN(bad)...); !bytes.Equal(v, want) {
			t.Fatalf("run %d holds %q, want %q", bad, v, want)
		}
		v[len(v)-1] ^= 0x01
		return txn.Set(runKey(bad), v)
	})
	if err != nil {
		t.Fatal(err)
	}

	var ce *CorruptEntryError
	if _, err := l.Entry(ctx, bad); !errors.As(err, &ce) || ce.Index != bad || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Entry(%d) after corruption: err = %v, want CorruptEntryError{%d}", bad, err, bad)
	}
	if _, err := l.Entries(ctx, 256, 512); !errors.As(err, &ce) || ce.Index != bad {
		t.Fatalf("Entries(256, 512) after corruption: err = %v, want CorruptEntryError{%d}", err, bad)
	}
	if _, err := l.Entry(ctx, bad-1); err != nil {
		t.Fatalf("Entry(%d), an intact neighbour: %v", bad-1, err)
	}

	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(srv.URL + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"tile/entries/001", http.StatusInternalServerError, "entry 300 does not match"},
		{"tile/entries/000", http.StatusOK, ""},
		{"tile/entries/002.p/88", http.StatusOK, ""},
		{"tile/0/001", http.StatusOK, ""},
	} {
		code, body := get(c.path)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("GET %s = %d %q, want %d containing %q", c.path, code, body, c.code, c.want)
		}
	}
}

// TestCorruptTileNotServed flips one bit of a stored full level-0 tile and
// checks that the tile is refused, naming it, because it no longer hashes
// to its entry in the level-1 tile; the entries it covers are refused too.
func TestCorruptTileNotServed(t *testing.T) {
	l, db, _ := newTestLog(t, Options{})
	ctx := context.Background()
	const size = 600
	for i := range size {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	err := db.Update(func(txn *badger.Txn) error {
		v, err := readTile(txn, 0, 1)
		if err != nil {
			return err
		}
		v[5*hashSize] ^= 0x80
		return txn.Set(tileKey(0, 1), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"tile/0/001", http.StatusInternalServerError, "tile 0/1 does not hash to its entry in tile 1/0"},
		{"tile/0/000", http.StatusOK, ""},
		{"tile/0/001.p/3", http.StatusInternalServerError, "tile 0/1 does not hash"}, // a prefix of a tile known bad
		{"tile/entries/001", http.StatusInternalServerError, "entry 261 does not match"},
	} {
		resp, err := http.Get(srv.URL + "/" + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("GET %s = %d %q, want %d containing %q", c.path, resp.StatusCode, b, c.code, c.want)
		}
	}
}
