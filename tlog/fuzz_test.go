package tlog

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
)

// Fixed keys so seed corpora stay meaningful across runs.
const (
	fuzzLogSKey = "PRIVATE+KEY+example.com/fuzz+f529778c+AQ31aRgPk863YDcEgmnP0qoga/oU50o3+78mkVObk+EI"
	fuzzLogVKey = "example.com/fuzz+f529778c+AZifaRFz5Zcv44HRDb19gyAK1D06idA5V2Kyk6FKMWce"
)

func fuzzVerifier(f *testing.F) note.Verifier {
	v, err := note.NewVerifier(fuzzLogVKey)
	if err != nil {
		f.Fatal(err)
	}
	return v
}

func fuzzSigner(f *testing.F) note.Signer {
	s, err := note.NewSigner(fuzzLogSKey)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzVerifyCheckpoint feeds arbitrary bytes to the signed-note and
// checkpoint parsers.
func FuzzVerifyCheckpoint(f *testing.F) {
	v := fuzzVerifier(f)
	s := fuzzSigner(f)
	good, err := note.Sign(&note.Note{Text: "example.com/fuzz\n3\nQ0hBTkdFTUUxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ=\n"}, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("example.com/fuzz\n3\nnotbase64\n\n— example.com/fuzz AAAA\n"))
	f.Add([]byte("example.com/fuzz\n18446744073709551616\nQ0hBTkdFTUUxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ=\n\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := VerifyCheckpoint(data, v)
		if err != nil {
			return
		}
		if cp.Origin == "" || len(cp.Hash) != hashSize {
			t.Fatalf("accepted checkpoint with origin %q and %d-byte hash", cp.Origin, len(cp.Hash))
		}
	})
}

// FuzzParseTilePath checks that tile paths parse without panicking and
// that accepted paths are exactly Tessera's spelling of the same tile.
func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "0/001.p/44", "1/x001/x234/067", "entries/000", "entries/x001/234.p/255", "64/000", "0/1", "0/000.p/0", "entries/.p/3", "0/x/000", "0/000.p/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		level, index, width, err := ParseTilePath(p)
		if err != nil {
			return
		}
		var want string
		if level < 0 {
			want = layout.EntriesPath(index, width)
		} else {
			want = layout.TilePath(uint64(level), index, width)
		}
		if want != "tile/"+p {
			t.Fatalf("ParseTilePath(%q) = %d/%d.p/%d, which is spelled %q", p, level, index, width, want)
		}
	})
}

// FuzzAddCheckpointRequest checks the witness request parser: no panics,
// and accepted requests survive a Marshal round trip.
func FuzzAddCheckpointRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nexample.com/fuzz\n1\nQ0hBTkdFTUUxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ=\n\n— example.com/fuzz AAAA\n"))
	f.Add([]byte("old 5\nQ0hBTkdFTUUxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ=\n\ncheckpoint"))
	f.Add([]byte("old 01\n\nx"))
	f.Add([]byte("old\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseAddCheckpointRequest(body)
		if err != nil {
			return
		}
		again, err := ParseAddCheckpointRequest(req.Marshal())
		if err != nil || again.Old != req.Old || len(again.Proof) != len(req.Proof) || !bytes.Equal(again.Checkpoint, req.Checkpoint) {
			t.Fatalf("round trip of %q failed: %v", body, err)
		}
	})
}

// FuzzHandler sends arbitrary requests to a real log's handler (with a
// witness key and one peer): every answer is 2xx or 4xx, with a reason for
// 4xx, never a 5xx or a panic.
func FuzzHandler(f *testing.F) {
	ctx := context.Background()
	wk := newWitnessKeys(f, "example.com/fuzz-witness")
	l, _, _ := newTestLog(f, Options{Signer: fuzzSigner(f), WitnessSigner: wk.signer, Peers: map[string]note.Verifier{"example.com/fuzz": fuzzVerifier(f)}})
	for i := range 300 {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			f.Fatal(err)
		}
	}
	cp, _ := l.Checkpoint(ctx)
	h := http.StripPrefix("/log", l.Handler())
	f.Add("POST", "/log/add-checkpoint", AddCheckpointRequest{Old: 0, Checkpoint: cp.Note}.Marshal())
	f.Add("POST", "/log/add-checkpoint", []byte("old 3\nAAAA\n\n"))
	f.Add("GET", "/log/tile/0/001.p/44", []byte(nil))
	f.Add("GET", "/log/tile/entries/x999/999", []byte(nil))
	f.Add("GET", "/log/proof/inclusion?index=1&size=2", []byte(nil))
	f.Add("GET", "/log/proof/consistency?old=2&new=1", []byte(nil))
	f.Add("GET", "/log/checkpoint", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || method == "" || strings.ContainsAny(method, " \r\n\t/") {
			return
		}
		req, err := http.NewRequest(method, "http://x"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Code != 404 && rec.Body.Len() == 0 {
			t.Fatalf("%s %s: %d without a reason", method, path, rec.Code)
		}
	})
}
