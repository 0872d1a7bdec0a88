package closure

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/closure/nixtest"
)

func TestImportLocalNix(t *testing.T) {
	n := nixtest.Require(t)
	ctx := context.Background()
	top, built := testClosure(n, "common")
	st, db := newStore(t)

	var lastDone, lastTotal int64
	res, err := Import(ctx, st, db, &LocalNix{}, top, ImportOptions{Progress: func(d, tot int64) { lastDone, lastTotal = d, tot }})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParsePathInfoJSON(n.PathInfoJSON(top), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Paths != len(want) || res.Paths != len(built) {
		t.Fatalf("imported %d paths, nix path-info lists %d, built %d", res.Paths, len(want), len(built))
	}
	if res.Root != top || lastDone != lastTotal || lastTotal != res.NarBytes {
		t.Fatalf("result %+v, progress %d/%d", res, lastDone, lastTotal)
	}
	if ok, err := st.IsPinned(ctx, res.Closure); err != nil || !ok {
		t.Fatalf("closure %s not pinned: %v", res.Closure, err)
	}
	cl, err := LoadClosure(ctx, st, res.Closure)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Root != top || cl.StoreDir != DefaultStoreDir || len(cl.Paths) != len(want) {
		t.Fatalf("closure record %+v", cl)
	}
	for i, e := range cl.Paths {
		if e.Path != want[i].Path {
			t.Fatalf("entry %d is %s, want %s", i, e.Path, want[i].Path)
		}
		spi, err := LoadStorePathInfo(ctx, st, linkCid(e.Info))
		if err != nil {
			t.Fatal(err)
		}
		if spi.NarHash != want[i].NarHashString() || spi.NarSize != want[i].NarSize ||
			strings.Join(spi.References, " ") != strings.Join(want[i].References, " ") {
			t.Fatalf("record of %s = %+v, nix says %+v", e.Path, spi, want[i])
		}
		// The stored NAR is byte for byte nix-store --dump's.
		f, err := st.Cat(ctx, spi.NARCid())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, n.Dump(e.Path)) {
			t.Fatalf("stored NAR of %s differs from nix-store --dump", e.Path)
		}
		if c, err := LookupHashPart(db, hashPart(e.Path)); err != nil || !c.Equals(linkCid(e.Info)) {
			t.Fatalf("index of %s: %v %v", e.Path, c, err)
		}
	}
	list, err := List(db)
	if err != nil || len(list) != 1 || !list[0].CID.Equals(res.Closure) || list[0].Root != top {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// A second import of the same closure reuses every path.
	res2, err := Import(ctx, st, db, &LocalNix{}, top, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Closure.Equals(res.Closure) || res2.Reused != res.Paths {
		t.Fatalf("re-import: %+v, first %+v", res2, res)
	}
}

func TestImportRejects(t *testing.T) {
	n := nixtest.Require(t)
	ctx := context.Background()
	top, built := testClosure(n, "common")
	lib := built[0]
	other := "/nix/store/00000000000000000000000000000000-other"

	tests := []struct {
		name  string
		src   Source
		is    error
		check func(t *testing.T, err error)
	}{
		{
			name: "narHash mismatch",
			src: &lyingSource{Source: &LocalNix{}, edit: func(pi *PathInfo) {
				if pi.Path == lib {
					d := append([]byte(nil), pi.NarHash.Digest()...)
					d[0] ^= 1
					h, _ := ParseNarHash("sha256-" + b64(d))
					pi.NarHash = h
				}
			}},
			is: ErrHashMismatch,
			check: func(t *testing.T, err error) {
				var he *HashMismatchError
				if !errors.As(err, &he) || he.StorePath != lib || he.WantHash == he.GotHash ||
					!strings.Contains(err.Error(), he.WantHash) || !strings.Contains(err.Error(), he.GotHash) || !strings.Contains(err.Error(), lib) {
					t.Fatalf("error %v does not name %s and both hashes", err, lib)
				}
			},
		},
		{
			name: "narSize mismatch",
			src: &lyingSource{Source: &LocalNix{}, edit: func(pi *PathInfo) {
				if pi.Path == lib {
					pi.NarSize++
				}
			}},
			is: ErrHashMismatch,
		},
		{
			name: "truncated NAR",
			src: &lyingSource{Source: &LocalNix{}, nar: func(pi PathInfo, rc io.ReadCloser) io.ReadCloser {
				if pi.Path != lib {
					return rc
				}
				return struct {
					io.Reader
					io.Closer
				}{io.LimitReader(rc, pi.NarSize-16), rc}
			}},
			is: ErrBadNAR,
		},
		{
			name: "missing reference",
			src: &lyingSource{Source: &LocalNix{}, edit: func(pi *PathInfo) {
				if pi.Path == lib {
					pi.References = append(pi.References, other)
				}
			}},
			is: ErrIncomplete,
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), lib) {
					t.Fatalf("error %v does not name the path and the missing reference", err)
				}
			},
		},
		{
			name: "reference outside the store dir",
			src: &lyingSource{Source: &LocalNix{}, edit: func(pi *PathInfo) {
				if pi.Path == lib {
					pi.References = append(pi.References, "/gnu/store/00000000000000000000000000000000-other")
				}
			}},
			is: ErrForeignStoreDir,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, db := newStore(t)
			_, err := Import(ctx, st, db, tc.src, top, ImportOptions{})
			if !errors.Is(err, tc.is) {
				t.Fatalf("Import error = %v, want %v", err, tc.is)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
			pins, perr := st.Pins(ctx)
			if perr != nil || len(pins) != 0 {
				t.Fatalf("failed import left pins %v (%v)", pins, perr)
			}
			if list, _ := List(db); len(list) != 0 {
				t.Fatalf("failed import left closures %v", list)
			}
			if _, err := LookupHashPart(db, hashPart(lib)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("failed import indexed %s: %v", lib, err)
			}
		})
	}
}
