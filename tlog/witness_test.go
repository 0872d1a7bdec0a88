package tlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

type witnessKeys struct {
	signer   note.Signer
	verifier note.Verifier
}

func newWitnessKeys(t testing.TB, name string) witnessKeys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return witnessKeys{s, v}
}

// checkpointsAt appends entries made by mk until each size in sizes and
// returns the signed checkpoint notes at those sizes.
func checkpointsAt(t *testing.T, l *Log, mk func(int) []byte, sizes ...uint64) map[uint64][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[uint64][]byte{}
	for _, s := range sizes {
		for l.Size() < s {
			if _, err := l.Append(ctx, mk(int(l.Size()))); err != nil {
				t.Fatal(err)
			}
		}
		cp, _ := l.Checkpoint(ctx)
		out[s] = cp.Note
	}
	return out
}

func TestWitnessAddCheckpoint(t *testing.T) {
	ctx := context.Background()
	logKeys := newKeys(t, "example.com/peer")
	wk := newWitnessKeys(t, "example.com/witness")
	w, _, _ := newTestLog(t, Options{WitnessSigner: wk.signer, Peers: map[string]note.Verifier{"example.com/peer": logKeys.verifier}})
	srv, _ := serveLog(t, w)

	peer, _, _ := newTestLog(t, Options{Signer: logKeys.signer})
	fork, _, _ := newTestLog(t, Options{Signer: logKeys.signer})
	stranger, _, _ := newTestLog(t, Options{})
	impostor := newKeys(t, "example.com/peer")
	badSig, _, _ := newTestLog(t, Options{Signer: impostor.signer})

	pc := checkpointsAt(t, peer, entryN, 3, 6, 9)
	fc := checkpointsAt(t, fork, func(i int) []byte { return []byte(fmt.Sprintf("fork %d", i)) }, 6, 8)
	sc := checkpointsAt(t, stranger, entryN, 2)
	bc := checkpointsAt(t, badSig, entryN, 9)
	proofOf := func(l *Log, a, b uint64) [][]byte {
		p, err := l.ConsistencyProof(ctx, a, b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		body   []byte
		status int
		want   string // substring of the response body
	}{
		{"first checkpoint", AddCheckpointRequest{Old: 0, Checkpoint: pc[3]}.Marshal(), 200, "— example.com/witness "},
		{"stale old size", AddCheckpointRequest{Old: 0, Checkpoint: pc[6]}.Marshal(), 409, "3"},
		{"consistent growth", AddCheckpointRequest{Old: 3, Proof: proofOf(peer, 3, 6), Checkpoint: pc[6]}.Marshal(), 200, "— example.com/witness "},
		{"fork with its own proof", AddCheckpointRequest{Old: 6, Proof: proofOf(fork, 6, 8), Checkpoint: fc[8]}.Marshal(), 422, "consistency proof"},
		{"rollback", AddCheckpointRequest{Old: 3, Proof: proofOf(peer, 3, 6)[:0], Checkpoint: pc[3]}.Marshal(), 409, "6"},
		{"old beyond checkpoint", AddCheckpointRequest{Old: 6, Checkpoint: pc[3]}.Marshal(), 400, "old size"},
		{"same checkpoint again", AddCheckpointRequest{Old: 6, Checkpoint: pc[6]}.Marshal(), 200, "— example.com/witness "},
		{"split view at same size", AddCheckpointRequest{Old: 6, Checkpoint: fc[6]}.Marshal(), 409, "6"},
		{"unknown origin", AddCheckpointRequest{Old: 0, Checkpoint: sc[2]}.Marshal(), 404, "unknown log origin"},
		{"bad signature", AddCheckpointRequest{Old: 6, Proof: proofOf(badSig, 6, 9), Checkpoint: bc[9]}.Marshal(), 403, "signature"},
		{"wrong proof", AddCheckpointRequest{Old: 6, Proof: proofOf(peer, 3, 9), Checkpoint: pc[9]}.Marshal(), 422, "consistency proof"},
		{"garbage", []byte("hello"), 400, "malformed"},
		{"bad old line", []byte("old 01\n\n" + string(pc[9])), 400, "canonical"},
		{"bad proof line", []byte("old 6\n!!!\n\n" + string(pc[9])), 400, "proof line"},
		{"no checkpoint", []byte("old 6\n\n"), 400, "no checkpoint"},
		{"valid growth", AddCheckpointRequest{Old: 6, Proof: proofOf(peer, 6, 9), Checkpoint: pc[9]}.Marshal(), 200, "— example.com/witness "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().Post(srv.URL+"/log/add-checkpoint", "text/plain", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Fatalf("status %d body %q, want %d containing %q", resp.StatusCode, body, tt.status, tt.want)
			}
			if tt.status == 200 {
				// The cosignature verifies with the witness's cosignature/v1 key.
				var req AddCheckpointRequest
				req, _ = ParseAddCheckpointRequest(tt.body)
				if _, err := note.Open(append(bytes.Clone(req.Checkpoint), body...), note.VerifierList(wk.verifier)); err != nil {
					t.Fatalf("cosignature does not verify: %v", err)
				}
			}
			if tt.status == 409 && resp.Header.Get("Content-Type") != "text/x.tlog.size" {
				t.Fatalf("409 Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	if s, _, _ := w.WitnessedSize("example.com/peer"); s != 9 {
		t.Fatalf("witnessed size %d, want 9", s)
	}
	// The Go API returns typed errors.
	_, err := w.AddCheckpoint(ctx, AddCheckpointRequest{Old: 0, Checkpoint: pc[9]})
	var we *WitnessError
	if !errors.As(err, &we) || !errors.Is(err, ErrWitnessConflict) || we.Latest != 9 {
		t.Fatalf("AddCheckpoint stale: %v", err)
	}
}

// TestWitnessingClient has a log ask a witness (another node's handler) to
// cosign its checkpoints, starting from a witness that already knows an
// older size (so the first request gets a 409 and is retried).
func TestWitnessingClient(t *testing.T) {
	ctx := context.Background()
	logKeys := newKeys(t, "example.com/witnessed")
	wk := newWitnessKeys(t, "example.com/w1")
	w, _, _ := newTestLog(t, Options{WitnessSigner: wk.signer, Peers: map[string]note.Verifier{"example.com/witnessed": logKeys.verifier}})
	srv, _ := serveLog(t, w)

	l, db, _ := newTestLog(t, Options{
		Signer:    logKeys.signer,
		Witnesses: []WitnessConfig{{URL: srv.URL + "/log", Verifier: wk.verifier}},
	})
	for i := range 20 {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitCosigned := func(size uint64) SignedCheckpoint {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			cp, _ := l.Checkpoint(ctx)
			if cp.Size == size && len(cp.Cosigners(wk.verifier)) == 1 {
				return cp
			}
			time.Sleep(10 * time.Millisecond)
		}
		cp, _ := l.Checkpoint(ctx)
		t.Fatalf("checkpoint at %d not cosigned: %s", size, cp.Note)
		return cp
	}
	cp := waitCosigned(20)
	if _, err := VerifyCheckpoint(cp.Note, logKeys.verifier); err != nil {
		t.Fatalf("cosigned note no longer verifies with the log key: %v", err)
	}
	// Restart the log: the witnessing client starts from old size 0,
	// gets 409 "20" and retries from 20.
	l.Close()
	l2, err := Open(db, Options{Signer: logKeys.signer, Witnesses: []WitnessConfig{{URL: srv.URL + "/log", Verifier: wk.verifier}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	l = l2
	for i := 20; i < 25; i++ {
		if _, err := l.Append(ctx, entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitCosigned(25)
	if s, _, _ := w.WitnessedSize("example.com/witnessed"); s != 25 {
		t.Fatalf("witness at %d, want 25", s)
	}
	// The checkpoint served over HTTP carries the cosignature.
	_, f := serveLog(t, l)
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(raw, note.VerifierList(wk.verifier)); err != nil {
		t.Fatalf("served checkpoint lacks the cosignature: %v\n%s", err, raw)
	}
	resp, err := http.Get(srv.URL + "/log/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET add-checkpoint: %d", resp.StatusCode)
	}
}
