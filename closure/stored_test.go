package closure

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/agentix/agentix-store/store"
	"github.com/ipfs/go-cid"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// TestIndexStored: a closure whose blocks are already in a store (as after
// store.PinFrom, here a store-level CAR import) is verified where it is,
// pinned as ImportCAR pins it and indexed; one whose records lie (another
// narHash or narSize, a missing reference) is refused with Verify's error
// and neither pinned nor indexed.
func TestIndexStored(t *testing.T) {
	n := nixtest.Require(t)
	ctx := context.Background()
	top, _ := testClosure(n, "common")
	st, db := newStore(t)
	r, err := Import(ctx, st, db, &LocalNix{}, top, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cl, entries, err := Load(ctx, st, r.Closure)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(edit func(i int, pi *PathInfo)) cid.Cid {
		t.Helper()
		out := &Closure{Root: cl.Root, StoreDir: cl.StoreDir}
		for i, e := range entries {
			pi := e.PathInfo
			pi.References = append([]string(nil), pi.References...)
			edit(i, &pi)
			c, err := putRecord(ctx, st, newStorePathInfo(pi, e.NAR), storePathInfoType)
			if err != nil {
				t.Fatal(err)
			}
			out.Paths = append(out.Paths, ClosureEntry{Path: pi.Path, Info: cidLink(c)})
		}
		c, err := putRecord(ctx, st, out, closureType)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		edit func(i int, pi *PathInfo)
		is   error // nil: accepted
	}{
		{"as imported", func(int, *PathInfo) {}, nil},
		{"wrong narHash", func(i int, pi *PathInfo) {
			if i == 0 {
				d := append([]byte(nil), pi.NarHash.Digest()...)
				d[5] ^= 0x80
				pi.NarHash, _ = ParseNarHash("sha256-" + b64(d))
			}
		}, ErrHashMismatch},
		{"wrong narSize", func(i int, pi *PathInfo) {
			if i == 1 {
				pi.NarSize += 8
			}
		}, ErrHashMismatch},
		{"missing reference", func(i int, pi *PathInfo) {
			if i == 0 {
				pi.References = append(pi.References, "/nix/store/00000000000000000000000000000000-gone")
			}
		}, ErrIncomplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := forge(tc.edit)
			var car bytes.Buffer
			if err := ExportCAR(ctx, st, c, &car); err != nil {
				t.Fatal(err)
			}
			st2, db2 := newStore(t)
			if _, err := st2.ImportCAR(ctx, &car, store.ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			vr, err := IndexStored(ctx, st2, db2, c)
			_, lookErr := LookupHashPart(db2, hashPart(top))
			pinned, _ := st2.IsPinned(ctx, c)
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("IndexStored = %v, want %v", err, tc.is)
				}
				if pinned || !errors.Is(lookErr, ErrNotFound) {
					t.Fatalf("refused closure: pinned %v, root lookup %v (want unpinned, not found)", pinned, lookErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !vr.Closure.Equals(c) || vr.Paths != r.Paths || vr.NarBytes != r.NarBytes || vr.Root != top {
				t.Fatalf("IndexStored = %+v, import %+v", vr, r)
			}
			if !pinned || lookErr != nil {
				t.Fatalf("accepted closure: pinned %v, root lookup %v", pinned, lookErr)
			}
			for _, e := range entries {
				if nc, err := LookupNAR(db2, nixbase32.EncodeToString(e.NarHash.Digest())); err != nil || !nc.Equals(e.NAR) {
					t.Fatalf("NAR of %s: lookup = %v, %v; want %v", e.Path, nc, err, e.NAR)
				}
			}
		})
	}
}
