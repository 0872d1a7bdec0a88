package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentix/agentix-store/internal/agentixtest"
)

// headAfter is the accepted snapshot of the first k of lines, as an ingest
// leaves it (only what the steps below read).
func headAfter(t *testing.T, lines []string, k int) *headState {
	t.Helper()
	tree := NewTree()
	for _, l := range lines[:k] {
		tree.Append([]byte(strings.TrimSuffix(l, "\n")))
	}
	prefix := sha256.New()
	prefix.Write([]byte(agentixtest.JoinLines(lines[:k])))
	st, err := prefix.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &headState{Size: int64(len(agentixtest.JoinLines(lines[:k]))), Lines: int64(k), Hashes: tree.Hashes(), Root: tree.Root(), PrefixSHA: st}
}

func TestScanNew(t *testing.T) {
	sample := sampleLines(t)
	cases := []struct {
		name     string
		lines    []string
		tail     string // an incomplete last line
		accepted int    // lines of the accepted snapshot (-1: none)
		newLines int64
		pending  int
		props    []int64 // lines whose saved proposal is collected
		applies  []int64
	}{
		{name: "first ingest", lines: sample, accepted: -1, newLines: 7, props: []int64{2, 4}, applies: []int64{3}},
		{name: "first ingest of an empty log", accepted: -1},
		{name: "after the accepted lines", lines: sample, accepted: 2, newLines: 5, props: []int64{4}, applies: []int64{3}},
		{name: "a line being written", lines: sample[:3], tail: `{"action": "sta`, accepted: -1, newLines: 3, pending: 15, props: []int64{2}, applies: []int64{3}},
		{name: "nothing new", lines: sample, accepted: 7},
		{name: "nothing new but a partial line", lines: sample, tail: `{"a`, accepted: 7, pending: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, false)
			ws := newWorkspace(t, tc.lines)
			if tc.lines == nil {
				writeLog(t, ws, []string{})
			}
			if tc.tail != "" {
				f, err := os.OpenFile(filepath.Join(ws, ".agentix", "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(tc.tail)
				f.Close()
			}
			var h *headState
			if tc.accepted >= 0 {
				h = headAfter(t, tc.lines, tc.accepted)
			}
			wr, err := os.OpenRoot(ws)
			if err != nil {
				t.Fatal(err)
			}
			defer wr.Close()
			f, err := openAuditLog(wr)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			state := newDBState(n.db, "ws")
			pc := &patchCache{ing: n.ing, ctx: context.Background(), root: wr, ws: "ws", seen: map[string]PatchInfo{}}
			var last [2]int64
			sc, err := scanNew(context.Background(), f, h, NewEvaluator(nil, state, pc.lookup), state, func(done, total int64) { last = [2]int64{done, total} })
			if err != nil {
				t.Fatal(err)
			}
			complete := int64(len(agentixtest.JoinLines(tc.lines)))
			if last[0] != sc.end-sc.start || last[1] < last[0] {
				t.Errorf("last progress %v, want %d bytes read of at least as many", last, sc.end-sc.start)
			}
			want := NewTree()
			for _, l := range tc.lines {
				want.Append([]byte(strings.TrimSuffix(l, "\n")))
			}
			if sc.end != complete || sc.lines != int64(len(tc.lines)) || sc.newLines != tc.newLines || sc.pending != tc.pending {
				t.Errorf("end %d lines %d new %d pending %d, want %d %d %d %d", sc.end, sc.lines, sc.newLines, sc.pending,
					complete, len(tc.lines), tc.newLines, tc.pending)
			}
			if h != nil && sc.start != h.Size {
				t.Errorf("start %d, want the accepted size %d", sc.start, h.Size)
			}
			if !bytes.Equal(sc.tree.Root(), want.Root()) {
				t.Errorf("tree root %x, want %x (every line's)", sc.tree.Root(), want.Root())
			}
			var props []int64
			for _, p := range sc.props {
				props = append(props, p.Line)
			}
			if !slices.Equal(props, tc.props) || !slices.Equal(sc.applies, tc.applies) {
				t.Errorf("proposals at %v, applies %v; want %v, %v", props, sc.applies, tc.props, tc.applies)
			}
		})
	}
}

func TestProveConsistency(t *testing.T) {
	sample := sampleLines(t)
	full := headAfter(t, sample, 7)
	wrong := headAfter(t, sample, 3)
	wrong.Root = bytes.Repeat([]byte{1}, 32)
	cases := []struct {
		name    string
		h       *headState
		wantErr string
		proof   bool
	}{
		{name: "first snapshot", h: nil},
		{name: "extends 1", h: headAfter(t, sample, 1), proof: true},
		{name: "extends 3", h: headAfter(t, sample, 3), proof: true},
		{name: "same size", h: full},
		{name: "accepted root not a prefix", h: wrong, wantErr: "consistency proof does not verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The tree resumed from the accepted snapshot, with the rest of
			// the sample appended, as an ingest builds it.
			tree, err := resumeTree(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range sample[tree.Size():] {
				tree.Append([]byte(strings.TrimSuffix(l, "\n")))
			}
			got, err := proveConsistency(tc.h, tree)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) > 0) != tc.proof {
				t.Fatalf("proof %v, want one: %v", got, tc.proof)
			}
			if tc.h == nil {
				return
			}
			var prf [][]byte
			for _, p := range got {
				b, err := hex.DecodeString(p)
				if err != nil {
					t.Fatal(err)
				}
				prf = append(prf, b)
			}
			if err := VerifyConsistency(uint64(tc.h.Lines), tree.Size(), prf, tc.h.Root, tree.Root()); err != nil {
				t.Fatalf("returned proof does not verify: %v", err)
			}
		})
	}
}

func TestResumePrefix(t *testing.T) {
	h := headAfter(t, []string{"abc\n"}, 1)
	bad := *h
	bad.PrefixSHA = []byte("not a sha256 state")
	cases := []struct {
		name    string
		h       *headState
		more    string
		want    string // the bytes whose SHA-256 results
		wantErr bool
	}{
		{name: "no accepted snapshot", more: "def\n", want: "def\n"},
		{name: "after the accepted bytes", h: h, more: "def\n", want: "abc\ndef\n"},
		{name: "corrupt stored state", h: &bad, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs, err := resumePrefix(tc.h)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "prefix hash state") {
					t.Fatalf("error %v, want one naming the prefix hash state", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			hs.Write([]byte(tc.more))
			if want := sha256.Sum256([]byte(tc.want)); !bytes.Equal(hs.Sum(nil), want[:]) {
				t.Fatalf("hash %x, want SHA-256 of %q", hs.Sum(nil), tc.want)
			}
		})
	}
}

// TestSetJSON: a value that cannot be encoded fails the write, naming the
// key, and nothing is stored (an ignored encoding error used to store an
// empty value as the head).
func TestSetJSON(t *testing.T) {
	n := newNode(t, false)
	cases := []struct {
		name    string
		v       any
		want    string
		wantErr bool
	}{
		{name: "history entry", v: historyEntry{Snapshot: "s", Lines: 2}, want: `{"snapshot":"s","lines":2,"size":0,"root":""}`},
		{name: "unencodable", v: map[string]any{"c": make(chan int)}, wantErr: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := wsKey("ws", "t", seqKey(int64(i)))
			err := n.db.Update(func(txn *badger.Txn) error { return setJSON(txn, k, tc.v) })
			var got []byte
			gerr := n.db.View(func(txn *badger.Txn) error {
				it, err := txn.Get(k)
				if err != nil {
					return err
				}
				got, err = it.ValueCopy(nil)
				return err
			})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), string(k)) {
					t.Fatalf("error %v, want one naming key %s", err, k)
				}
				if !errors.Is(gerr, badger.ErrKeyNotFound) {
					t.Fatalf("key %s holds %q after a failed encoding (%v)", k, got, gerr)
				}
				return
			}
			if err != nil || gerr != nil || string(got) != tc.want {
				t.Fatalf("stored %q (%v, %v), want %s", got, err, gerr, tc.want)
			}
		})
	}
}

// TestRecordEvidence: each record is appended after those of its
// workspace, none replaced, and other workspaces' records are apart.
func TestRecordEvidence(t *testing.T) {
	n := newNode(t, false)
	steps := []struct {
		ws   string
		evd  Evidence
		want []string // kinds of ws's records after the step, oldest first
	}{
		{ws: "a", evd: Evidence{Kind: TamperEdited, Line: 3}, want: []string{TamperEdited}},
		{ws: "b", evd: Evidence{Kind: TamperRemoved, Line: 1}, want: []string{TamperRemoved}},
		{ws: "a", evd: Evidence{Kind: TamperTruncated, Line: 2}, want: []string{TamperEdited, TamperTruncated}},
		{ws: "a", evd: Evidence{Kind: TamperEdited, Line: 3}, want: []string{TamperEdited, TamperTruncated, TamperEdited}},
	}
	for i, s := range steps {
		if err := n.ing.recordEvidence(s.ws, s.evd); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := n.ing.Evidence(s.ws)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range got {
			kinds = append(kinds, e.Kind)
		}
		if !slices.Equal(kinds, s.want) || got[len(got)-1] != s.evd {
			t.Fatalf("step %d: records of %s %v (last %+v), want %v ending with %+v", i, s.ws, kinds, got[len(got)-1], s.want, s.evd)
		}
	}
}
