package closure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/nix-community/go-nix/pkg/nar"
)

// smallPackages is the normal suite's variant of the benchmarks' closure
// shape: 20 packages plus a top path.
func smallPackages(n *nixtest.Nix, salt string, vary ...int) []string {
	return n.Packages(20, 1, 200, 3, salt, vary...)
}

// TestDumpNARMatchesNixStoreDump checks DumpNAR byte for byte against
// `nix-store --dump` and its SHA-256 against `nix path-info`'s narHash, for
// every node type a NAR has (symlinks, dangling ones, a top-level symlink,
// executables, empty files and directories, names whose byte order differs
// from other orders) and for a closure shaped like a system's.
func TestDumpNARMatchesNixStoreDump(t *testing.T) {
	n := nixtest.Require(t)
	_, paths := testClosure(n, "dump")
	paths = append(paths, smallPackages(n, "dump")...)

	tree := filepath.Join(t.TempDir(), "tree")
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"B", 0o644}, {"a", 0o755}, {"a-b", 0o644}, {"a.b", 0o644}, {"é", 0o644}, {"Z/sub/deep", 0o700}, {"a0/x", 0o444}} {
		p := filepath.Join(tree, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.name+"\n"), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(tree, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(tree, "Z/up")); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, n.AddFixed(tree))
	link := filepath.Join(t.TempDir(), "toplink")
	if err := os.Symlink("/etc", link); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, n.AddFixed(link))

	for _, p := range paths {
		infos, err := ParsePathInfoJSON([]byte(n.Run("nix", "path-info", "--json", p)), "")
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := DumpNAR(&got, "", p); err != nil {
			t.Fatalf("DumpNAR %s: %v", p, err)
		}
		want := n.Dump(p)
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: DumpNAR gives %d bytes that differ from nix-store --dump's %d", p, got.Len(), len(want))
		}
		if h := FormatHash(sumHash(sha256sum(got.Bytes()))); h != infos[0].NarHashString() || int64(got.Len()) != infos[0].NarSize {
			t.Errorf("%s: DumpNAR hash %s size %d, nix path-info %s %d", p, h, got.Len(), infos[0].NarHashString(), infos[0].NarSize)
		}
	}
}

func sha256sum(b []byte) hash.Hash {
	h := sha256.New()
	h.Write(b)
	return h
}

// TestDumpNARNoFollow dumps paths of a store directory made here (no Nix
// needed): symlinks are dumped as symlinks, never read through, whether at
// the top or inside, and what a NAR cannot hold or a path outside the store
// is refused with a *DumpError naming the entry.
func TestDumpNARNoFollow(t *testing.T) {
	storeDir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	const h = "0c0rb2ha9w1jbg7fxvr1jbzrkyaqkyd4"
	mk := func(name string) string { return filepath.Join(storeDir, h+"-"+name) }

	top := mk("toplink") // the store path itself is a symlink out of the store
	if err := os.Symlink(filepath.Join(outside, "secret"), top); err != nil {
		t.Fatal(err)
	}
	inner := mk("inner")
	os.Mkdir(inner, 0o755)
	if err := os.Symlink(outside, filepath.Join(inner, "out")); err != nil {
		t.Fatal(err)
	}
	fifo := mk("fifo-dir")
	os.Mkdir(fifo, 0o755)
	if err := syscall.Mkfifo(filepath.Join(fifo, "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}

	for _, tc := range []struct {
		name      string
		path      string
		wantLinks map[string]string // NAR entry → symlink target
		wantEntry string            // for a failure
		wantErr   error
	}{
		{name: "top-level symlink", path: top, wantLinks: map[string]string{"/": filepath.Join(outside, "secret")}},
		{name: "inner symlink to a directory outside", path: inner, wantLinks: map[string]string{"/out": outside}},
		{name: "FIFO", path: fifo, wantEntry: "/pipe"},
		{name: "outside the store dir", path: filepath.Join(outside, "secret"), wantEntry: "/", wantErr: ErrForeignStoreDir},
		{name: "missing", path: mk("missing-path"), wantEntry: "/", wantErr: os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := DumpNAR(&buf, storeDir, tc.path)
			if tc.wantLinks == nil {
				var de *DumpError
				if !errors.As(err, &de) || de.Entry != tc.wantEntry || de.StorePath != tc.path {
					t.Fatalf("DumpNAR = %v, want a *DumpError at %q of %s", err, tc.wantEntry, tc.path)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("DumpNAR = %v, want errors.Is %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckNAR(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			nr, err := nar.NewReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			links := map[string]string{}
			for {
				hdr, err := nr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if hdr.Type == nar.TypeRegular {
					t.Fatalf("regular file %s in the NAR: a symlink was followed", hdr.Path)
				}
				if hdr.Type == nar.TypeSymlink {
					links[hdr.Path] = hdr.LinkTarget
				}
			}
			for e, target := range tc.wantLinks {
				if links[e] != target {
					t.Errorf("entry %s: symlink to %q, want %q (all: %v)", e, links[e], target, links)
				}
			}
		})
	}
}

// countingNix is LocalNix counting the NARs it is asked for.
type countingNix struct {
	LocalNix
	nars atomic.Int64
}

func (c *countingNix) NAR(ctx context.Context, pi PathInfo) (io.ReadCloser, error) {
	c.nars.Add(1)
	return c.LocalNix.NAR(ctx, pi)
}

func (c *countingNix) WriteNAR(ctx context.Context, pi PathInfo, w io.Writer) error {
	c.nars.Add(1)
	return c.LocalNix.WriteNAR(ctx, pi, w)
}

// TestImportPackagesInProcess imports a system-shaped closure with no
// nix-store program to run (BinDir holds only nix): NARs come from DumpNAR,
// none from a process per path. Stored NARs are nix-store --dump's bytes. A
// re-import reads no NAR, and a closure that differs by one package reads
// only the changed paths (the package and the top path referring to it).
func TestImportPackagesInProcess(t *testing.T) {
	n := nixtest.Require(t)
	paths := smallPackages(n, "inproc")
	top := paths[len(paths)-1]
	nixBin, err := filepath.EvalSymlinks(mustLookPath(t, "nix"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(nixBin, filepath.Join(bin, "nix")); err != nil {
		t.Fatal(err)
	}
	st, db := newStore(t)
	ctx := context.Background()
	src := &countingNix{LocalNix: LocalNix{BinDir: bin}}
	res, err := Import(ctx, st, db, src, top, ImportOptions{Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Paths != len(paths) || res.Reused != 0 || src.nars.Load() != int64(len(paths)) {
		t.Fatalf("first import: %d paths, %d reused, %d NARs read; want %d, 0, %d", res.Paths, res.Reused, src.nars.Load(), len(paths), len(paths))
	}
	for _, p := range []string{paths[0], paths[7], top} {
		c, err := LookupHashPart(db, hashPart(p))
		if err != nil {
			t.Fatal(err)
		}
		r, err := LoadStorePathInfo(ctx, st, c)
		if err != nil {
			t.Fatal(err)
		}
		f, err := st.Cat(ctx, r.NARCid())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, n.Dump(p)) {
			t.Errorf("stored NAR of %s differs from nix-store --dump", p)
		}
	}

	src.nars.Store(0)
	res2, err := Import(ctx, st, db, src, top, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Closure != res.Closure || res2.Reused != len(paths) || src.nars.Load() != 0 {
		t.Fatalf("re-import: closure %s (want %s), %d reused, %d NARs read; want all reused, none read", res2.Closure, res.Closure, res2.Reused, src.nars.Load())
	}

	other := smallPackages(n, "inproc", 5)
	src.nars.Store(0)
	res3, err := Import(ctx, st, db, src, other[len(other)-1], ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res3.Reused != len(paths)-2 || src.nars.Load() != 2 {
		t.Fatalf("import of a closure differing by one package: %d reused, %d NARs read; want %d, 2", res3.Reused, src.nars.Load(), len(paths)-2)
	}
}

func mustLookPath(t *testing.T, prog string) string {
	t.Helper()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(d, prog)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("%s not in $PATH", prog)
	return ""
}

// lyingLocal is LocalNix (WriteNAR included, so small NARs take the
// buffered path) with path infos rewritten.
type lyingLocal struct {
	LocalNix
	edit func(*PathInfo)
}

func (l *lyingLocal) Closure(ctx context.Context, root string) ([]PathInfo, error) {
	infos, err := l.LocalNix.Closure(ctx, root)
	for i := range infos {
		l.edit(&infos[i])
	}
	return infos, err
}

// TestImportSmallNARMismatch: a small NAR (buffered whole) whose narHash or
// narSize is not the path info's is refused with a *HashMismatchError
// naming the path, and nothing is pinned.
func TestImportSmallNARMismatch(t *testing.T) {
	n := nixtest.Require(t)
	paths := smallPackages(n, "mismatch")
	top, victim := paths[len(paths)-1], paths[3]
	other, err := ParseNarHash("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*PathInfo)
	}{
		{"hash", func(pi *PathInfo) { pi.NarHash = other }},
		{"size smaller", func(pi *PathInfo) { pi.NarSize -= 8 }},
		{"size larger", func(pi *PathInfo) { pi.NarSize += 8 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, db := newStore(t)
			src := &lyingLocal{edit: func(pi *PathInfo) {
				if pi.Path == victim {
					tc.edit(pi)
				}
			}}
			_, err := Import(context.Background(), st, db, src, top, ImportOptions{})
			var he *HashMismatchError
			if !errors.As(err, &he) || !errors.Is(err, ErrHashMismatch) || he.StorePath != victim {
				t.Fatalf("Import = %v, want a *HashMismatchError naming %s", err, victim)
			}
			pins, err := st.Pins(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(pins) != 0 {
				t.Fatalf("a failed import pinned %v", pins)
			}
		})
	}
}
