package closure

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/ipfs/go-cid"
)

func TestImportBinaryCacheFile(t *testing.T) {
	n := nixtest.Require(t)
	ctx := context.Background()
	top, built := testClosure(n, "common")
	for _, comp := range []string{"none", "xz", "zstd", "bzip2"} {
		t.Run(comp, func(t *testing.T) {
			n := n.For(t)
			dir := t.TempDir()
			n.Run("nix", "copy", "--to", "file://"+dir+"?compression="+comp, top)
			bc, err := NewBinaryCache(ctx, "file://"+dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, db := newStore(t)
			res, err := Import(ctx, st, db, bc, top, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Paths != len(built) {
				t.Fatalf("imported %d paths, want %d", res.Paths, len(built))
			}
			if _, err := Verify(ctx, st, res.Closure); err != nil {
				t.Fatal(err)
			}
		})
	}

	// A narinfo whose NarHash disagrees with its NAR.
	t.Run("bad NarHash", func(t *testing.T) {
		n := n.For(t)
		dir := t.TempDir()
		n.Run("nix", "copy", "--to", "file://"+dir+"?compression=zstd", top)
		lib := built[0]
		f := filepath.Join(dir, hashPart(lib)+".narinfo")
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`NarHash: sha256:([0-9a-z]{52})`)
		m := re.FindSubmatch(text)
		if m == nil {
			t.Fatalf("no NarHash in %s", text)
		}
		orig := string(m[1])
		forged := "0" + orig[1:]
		if forged == orig {
			forged = "1" + orig[1:]
		}
		// FileHash covers the compressed file and stays right; only
		// NarHash lies.
		text = bytes.Replace(text, []byte("NarHash: sha256:"+orig), []byte("NarHash: sha256:"+forged), 1)
		if err := os.WriteFile(f, text, 0o644); err != nil {
			t.Fatal(err)
		}
		bc, err := NewBinaryCache(ctx, "file://"+dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, db := newStore(t)
		_, err = Import(ctx, st, db, bc, top, ImportOptions{})
		var he *HashMismatchError
		if !errors.As(err, &he) || he.StorePath != lib || !strings.Contains(err.Error(), forged) || !strings.Contains(err.Error(), orig) {
			t.Fatalf("Import = %v, want a hash mismatch naming %s, %s and %s", err, lib, forged, orig)
		}
		if pins, _ := st.Pins(ctx); len(pins) != 0 {
			t.Fatalf("pins after failed import: %v", pins)
		}
	})
}

func TestVerifyDiffCAR(t *testing.T) {
	n := nixtest.Require(t)
	ctx := context.Background()
	topA, builtA := testClosure(n, "common")
	// Generation B: only lib and data changed (their salt).
	topB, builtB := testClosure(n, "gen-b")
	st, db := newStore(t)
	ra, err := Import(ctx, st, db, &LocalNix{}, topA, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Import(ctx, st, db, &LocalNix{}, topB, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*ImportResult{ra, rb} {
		vr, err := Verify(ctx, st, r.Closure)
		if err != nil {
			t.Fatal(err)
		}
		if vr.Paths != r.Paths || vr.NarBytes != r.NarBytes || vr.Root != r.Root {
			t.Fatalf("Verify = %+v, import %+v", vr, r)
		}
	}

	d, err := Diff(ctx, st, ra.Closure, rb.Closure)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 0 || len(d.Removed) != 0 || len(d.Changed) != len(builtA) {
		t.Fatalf("Diff = %+v", d)
	}
	for i, c := range d.Changed {
		// Sorted by name: app, data, lib, top.
		want := map[string][2]string{"lib": {builtA[0], builtB[0]}, "data": {builtA[1], builtB[1]}, "app": {builtA[2], builtB[2]}, "top": {builtA[3], builtB[3]}}[c.Name]
		if c.From != want[0] || c.To != want[1] {
			t.Fatalf("change %d = %+v, want %v", i, c, want)
		}
	}
	if d, err := Diff(ctx, st, ra.Closure, ra.Closure); err != nil || len(d.Changed)+len(d.Added)+len(d.Removed) != 0 {
		t.Fatalf("Diff(A, A) = %+v, %v", d, err)
	}

	// CAR round trip into a fresh store.
	var car bytes.Buffer
	if err := ExportCAR(ctx, st, ra.Closure, &car); err != nil {
		t.Fatal(err)
	}
	st2, db2 := newStore(t)
	vr, err := ImportCAR(ctx, st2, db2, bytes.NewReader(car.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !vr.Closure.Equals(ra.Closure) || vr.Paths != ra.Paths {
		t.Fatalf("ImportCAR = %+v, want %+v", vr, ra)
	}
	if ok, _ := st2.IsPinned(ctx, ra.Closure); !ok {
		t.Fatal("closure from CAR not pinned")
	}
	if c, err := LookupHashPart(db2, hashPart(topA)); err != nil || !c.Defined() {
		t.Fatalf("closure from CAR not indexed: %v", err)
	}

	// A CAR of something that is not a closure is refused and not pinned.
	var junk bytes.Buffer
	cl, entries, err := Load(ctx, st, ra.Closure)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ExportCAR(ctx, &junk, entries[0].Info, storeExportOptions()); err != nil {
		t.Fatal(err)
	}
	st3, db3 := newStore(t)
	if _, err := ImportCAR(ctx, st3, db3, &junk); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("ImportCAR(StorePathInfo CAR) = %v, want ErrBadRecord", err)
	}
	if pins, _ := st3.Pins(ctx); len(pins) != 0 {
		t.Fatalf("pins after refused CAR: %v", pins)
	}
	_ = cl
}

// TestVerifyDetectsBadRecord writes a closure whose record claims another
// narHash (as a forged CAR would) and checks Verify and ImportCAR refuse it.
func TestVerifyDetectsBadRecord(t *testing.T) {
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
		is   error
	}{
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
		{"reference outside the store dir", func(i int, pi *PathInfo) {
			if i == 0 {
				pi.References = append(pi.References, "/etc/passwd")
			}
		}, ErrForeignStoreDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := forge(tc.edit)
			if _, err := Verify(ctx, st, c); !errors.Is(err, tc.is) {
				t.Fatalf("Verify = %v, want %v", err, tc.is)
			}
			var car bytes.Buffer
			if err := ExportCAR(ctx, st, c, &car); err != nil {
				t.Fatal(err)
			}
			st2, db2 := newStore(t)
			if _, err := ImportCAR(ctx, st2, db2, &car); !errors.Is(err, tc.is) {
				t.Fatalf("ImportCAR = %v, want %v", err, tc.is)
			}
			if pins, _ := st2.Pins(ctx); len(pins) != 0 {
				t.Fatalf("pins after refused CAR: %v", pins)
			}
		})
	}
}
