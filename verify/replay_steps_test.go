package verify

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// leafTile is the level-0 tile bytes over entries (their leaf hashes).
func leafTile(entries ...[]byte) []byte {
	var t []byte
	for _, e := range entries {
		t = append(t, rfc6962.DefaultHasher.HashLeaf(e)...)
	}
	return t
}

// entryBundle encodes entries as a tlog-tiles entry bundle.
func entryBundle(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

func TestReplayJobCheck(t *testing.T) {
	a := openNode(t, initNodeDir(t, "alpha"))
	good := a.proposalEnvelope(t, "one", a.signer)
	other := a.proposalEnvelope(t, "two", testSigner(t))
	raw, empty, notEnv := []byte("hello\n"), []byte{}, []byte(`{"payloadType": "x"}`)
	wrong := bytes.Repeat([]byte{7}, 32)
	cases := []struct {
		name    string
		first   uint64
		entries [][]byte
		tile    []byte
		raw     uint64
		bad     []uint64
		unmatch []uint64
	}{
		{name: "attestation", entries: [][]byte{good}, tile: leafTile(good)},
		{name: "raw entries", entries: [][]byte{raw, empty}, tile: leafTile(raw, empty), raw: 2},
		{name: "not a valid envelope", first: 256, entries: [][]byte{good, notEnv}, tile: leafTile(good, notEnv), bad: []uint64{257}},
		{name: "signed by an unknown key", first: 3, entries: [][]byte{other}, tile: leafTile(other), bad: []uint64{3}},
		{name: "tile differs at one entry", first: 512, entries: [][]byte{raw, good, empty}, tile: slices.Concat(leafTile(raw), wrong, leafTile(empty)), raw: 2, unmatch: []uint64{513}},
		{name: "tile too short", first: 10, entries: [][]byte{raw, empty}, tile: leafTile(raw), raw: 2, unmatch: []uint64{11}},
		{name: "no tile", entries: [][]byte{raw, good}, raw: 1, unmatch: []uint64{0, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &replayJob{first: tc.first, entries: tc.entries, tile: tc.tile}
			j.check(a.policy)
			var bad []uint64
			for _, be := range j.bad {
				bad = append(bad, be.i)
			}
			if j.raw != tc.raw || !slices.Equal(bad, tc.bad) || !slices.Equal(j.unmatch, tc.unmatch) {
				t.Fatalf("raw %d, bad %v, unmatched %v; want %d, %v, %v", j.raw, bad, j.unmatch, tc.raw, tc.bad, tc.unmatch)
			}
			if len(j.hashes) != len(tc.entries) || (len(tc.entries) > 0 && !bytes.Equal(slices.Concat(j.hashes...), leafTile(tc.entries...))) {
				t.Fatalf("leaf hashes %x, want those of the entries", j.hashes)
			}
		})
	}
}

// tileSource serves one level-0 tile (or an error) and nothing else.
type tileSource struct {
	tile []byte
	err  error
}

func (s tileSource) ReadCheckpoint(context.Context) ([]byte, error) {
	return nil, errors.New("no checkpoint")
}
func (s tileSource) ReadTile(_ context.Context, level, _ uint64, _ uint8) ([]byte, error) {
	if level != 0 {
		return nil, errors.New("only level 0")
	}
	return s.tile, s.err
}
func (s tileSource) ReadEntryBundle(context.Context, uint64, uint8) ([]byte, error) {
	return nil, errors.New("no bundles")
}

func TestBundleJob(t *testing.T) {
	e := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	cases := []struct {
		name    string
		data    []byte
		ri      layout.RangeInfo
		src     tileSource
		first   uint64
		entries [][]byte
		tile    []byte
		wantErr string
	}{
		{name: "whole bundle", data: entryBundle(e...), ri: layout.RangeInfo{Index: 2, N: 3}, src: tileSource{tile: leafTile(e...)},
			first: 512, entries: e, tile: leafTile(e...)},
		{name: "part of a bundle", data: entryBundle(e...), ri: layout.RangeInfo{Index: 2, First: 1, N: 2}, src: tileSource{tile: leafTile(e...)},
			first: 513, entries: e[1:], tile: leafTile(e[1:]...)},
		{name: "tile too short: dropped", data: entryBundle(e...), ri: layout.RangeInfo{Index: 0, N: 3}, src: tileSource{tile: leafTile(e[:2]...)},
			first: 0, entries: e},
		{name: "bundle too short", data: entryBundle(e...), ri: layout.RangeInfo{Index: 2, N: 4}, src: tileSource{tile: leafTile(e...)},
			wantErr: "entry bundle 2 holds 3 entries, want at least 4"},
		{name: "bundle not decodable", data: []byte{0, 9, 'x'}, ri: layout.RangeInfo{Index: 5, N: 1},
			wantErr: "entry bundle 5: "},
		{name: "tile unreadable", data: entryBundle(e...), ri: layout.RangeInfo{Index: 7, N: 3}, src: tileSource{err: errors.New("gone")},
			wantErr: "level-0 tile 7: gone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j, err := bundleJob(context.Background(), tc.src, client.Bundle{RangeInfo: tc.ri, Data: tc.data})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if j.first != tc.first || !slices.EqualFunc(j.entries, tc.entries, bytes.Equal) || !bytes.Equal(j.tile, tc.tile) || j.done == nil {
				t.Fatalf("job first %d entries %q tile %x, want %d %q %x", j.first, j.entries, j.tile, tc.first, tc.entries, tc.tile)
			}
		})
	}
}

func TestReportReplay(t *testing.T) {
	e := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	root := func(entries ...[]byte) []byte {
		rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
		for _, x := range entries {
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(x), nil); err != nil {
				t.Fatal(err)
			}
		}
		r, err := rng.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name      string
		entries   [][]byte
		unmatch   []uint64
		raw       uint64
		size      uint64
		root      []byte
		fetchErr  error
		ok        bool
		failures  []error  // matched with errors.Is, in order
		entriesAt []uint64 // the failures' and uncertain findings' entries
		uncertain int
	}{
		{name: "proven", entries: e, size: 3, root: root(e...), ok: true},
		{name: "empty log", size: 0, root: rfc6962.DefaultHasher.EmptyRoot(), ok: true},
		{name: "raw entries proven", entries: e, raw: 3, size: 3, root: root(e...), ok: true},
		{name: "an entry is wrong", entries: e, unmatch: []uint64{1}, size: 3, root: root(e[0], []byte("x"), e[2]),
			failures: []error{ErrEntryMismatch, ErrRootMismatch}, entriesAt: []uint64{1}},
		{name: "a tile is wrong", entries: e, unmatch: []uint64{2}, size: 3, root: root(e...),
			failures: []error{ErrEntryMismatch}, entriesAt: []uint64{2}},
		{name: "read stopped", entries: e[:2], size: 3, root: root(e...), fetchErr: errors.New("timeout"),
			uncertain: 1, entriesAt: []uint64{2}},
		{name: "fewer entries than the checkpoint", entries: e[:2], size: 3, root: root(e...), uncertain: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReport("log", "t")
			res := &LogResult{}
			tl := newReplayTally(100)
			j := &replayJob{raw: tc.raw, unmatch: tc.unmatch}
			for _, x := range tc.entries {
				j.hashes = append(j.hashes, rfc6962.DefaultHasher.HashLeaf(x))
			}
			tl.add(r, j, res)
			reportReplay(r, tc.size, tc.root, tl, tc.fetchErr, res)
			r.Done()
			if r.OK != tc.ok || len(r.Failures) != len(tc.failures) || len(r.Uncertain) != tc.uncertain {
				t.Fatalf("ok %v, failures %+v, uncertain %+v", r.OK, r.Failures, r.Uncertain)
			}
			var at []uint64
			for i, f := range r.Failures {
				if !errors.Is(f.Err, tc.failures[i]) {
					t.Errorf("failure %d: %v, want %v", i, f.Err, tc.failures[i])
				}
			}
			for _, f := range slices.Concat(r.Failures, r.Uncertain) {
				if f.Entry != nil {
					at = append(at, *f.Entry)
				}
			}
			if !slices.Equal(at, tc.entriesAt) {
				t.Errorf("findings at entries %v, want %v", at, tc.entriesAt)
			}
			if tc.ok && len(r.Proven) == 0 {
				t.Errorf("nothing proven")
			}
		})
	}
}
