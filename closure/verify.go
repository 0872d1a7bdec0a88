package closure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
)

// Entry is one path of a loaded closure.
type Entry struct {
	PathInfo
	// Info is the CID of the StorePathInfo record.
	Info cid.Cid `json:"info"`
	// NAR is the CID of the NAR (UnixFS file).
	NAR cid.Cid `json:"nar"`
}

// Blocks is where closure's read functions (Load, Verify, Diff) read
// records and NARs: a store's *store.Blockstore, or go-car's read-only
// blockstore over a fetched CAR, which an auditor checks without writing a
// database. It must return only blocks that hash to their CIDs.
type Blocks = store.BlockGetter

// Load reads the Closure record c and every StorePathInfo it links to, and
// checks the records are consistent (sorted unique paths, each entry's path
// is its record's path, all in the closure's store dir). It does not read
// NARs; see Verify.
func Load(ctx context.Context, bs Blocks, c cid.Cid) (*Closure, []Entry, error) {
	cl, err := LoadClosure(ctx, bs, c)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Entry, 0, len(cl.Paths))
	for i, e := range cl.Paths {
		if i > 0 && cl.Paths[i-1].Path >= e.Path {
			return nil, nil, fmt.Errorf("%w: closure %s: paths not sorted and unique at %s", ErrBadRecord, c, e.Path)
		}
		if err := checkStorePath(e.Path, cl.StoreDir, ""); err != nil {
			return nil, nil, err
		}
		ic := linkCid(e.Info)
		spi, err := LoadStorePathInfo(ctx, bs, ic)
		if err != nil {
			return nil, nil, err
		}
		if spi.StorePath != e.Path {
			return nil, nil, fmt.Errorf("%w: closure %s: entry %s links to the record of %s", ErrBadRecord, c, e.Path, spi.StorePath)
		}
		pi, err := spi.PathInfo()
		if err != nil {
			return nil, nil, err
		}
		for _, ref := range pi.References {
			if err := checkStorePath(ref, cl.StoreDir, pi.Path); err != nil {
				return nil, nil, err
			}
		}
		out = append(out, Entry{PathInfo: pi, Info: ic, NAR: spi.NARCid()})
	}
	return cl, out, nil
}

// VerifyResult reports a successful Verify.
type VerifyResult struct {
	Closure  cid.Cid `json:"closure"`
	Root     string  `json:"root"`
	Paths    int     `json:"paths"`
	NarBytes int64   `json:"narBytes"`
	// Entries are the closure's paths as Load read them (not encoded).
	Entries []Entry `json:"-"`
}

// Verify re-checks the closure c from the store alone: the records load and
// are consistent, the root is one of the paths, the closure is complete, and
// every NAR is read back (each block hash-checked by the store), parsed
// (CheckNAR) and hashed, and matches its record's narHash and narSize.
func Verify(ctx context.Context, bs Blocks, c cid.Cid) (*VerifyResult, error) {
	cl, entries, err := Load(ctx, bs, c)
	if err != nil {
		return nil, err
	}
	return verifyLoaded(ctx, bs, c, cl, entries)
}

// verifyLoaded is Verify of a closure already loaded.
func verifyLoaded(ctx context.Context, bs Blocks, c cid.Cid, cl *Closure, entries []Entry) (*VerifyResult, error) {
	infos := make([]PathInfo, len(entries))
	rootFound := false
	for i, e := range entries {
		infos[i] = e.PathInfo
		rootFound = rootFound || e.Path == cl.Root
	}
	if !rootFound {
		return nil, fmt.Errorf("%w: closure %s does not contain its root %s", ErrIncomplete, c, cl.Root)
	}
	if err := CheckComplete(infos); err != nil {
		return nil, err
	}
	res := &VerifyResult{Closure: c, Root: cl.Root, Paths: len(entries), Entries: entries}
	for _, e := range entries {
		if err := verifyNAR(ctx, bs, e); err != nil {
			return nil, err
		}
		res.NarBytes += e.NarSize
	}
	return res, nil
}

func verifyNAR(ctx context.Context, bs Blocks, e Entry) error {
	f, err := store.CatFrom(ctx, bs, e.NAR)
	if err != nil {
		return fmt.Errorf("NAR of %s: %w", e.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	cnt := &countWriter{}
	if err := checkNAR(io.TeeReader(f, io.MultiWriter(h, cnt)), e.Path); err != nil {
		return err
	}
	got := FormatHash(sumHash(h))
	if got != e.NarHashString() || cnt.n != e.NarSize {
		return &HashMismatchError{StorePath: e.Path, WantHash: e.NarHashString(), GotHash: got, WantSize: e.NarSize, GotSize: cnt.n}
	}
	return nil
}

// Change is a path present in both closures of a Diff with different
// contents: the same store path with another narHash, or the same package
// name at another store path.
type Change struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// DiffResult lists how closure B differs from closure A.
type DiffResult struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []Change `json:"changed"`
}

// Diff compares the closures a and b. A path in both with the same narHash is
// unchanged; with another narHash it is Changed (From == To). Of the paths
// only in a or only in b, those whose name (the part after "<hash>-") occurs
// exactly once on each side are paired as Changed (a new build of the same
// package); the rest are Removed or Added. All lists are sorted.
func Diff(ctx context.Context, bs Blocks, a, b cid.Cid) (*DiffResult, error) {
	_, ea, err := Load(ctx, bs, a)
	if err != nil {
		return nil, err
	}
	_, eb, err := Load(ctx, bs, b)
	if err != nil {
		return nil, err
	}
	return diffEntries(ea, eb), nil
}

func diffEntries(ea, eb []Entry) *DiffResult {
	inA := map[string]Entry{}
	for _, e := range ea {
		inA[e.Path] = e
	}
	inB := map[string]Entry{}
	for _, e := range eb {
		inB[e.Path] = e
	}
	res := &DiffResult{Added: []string{}, Removed: []string{}, Changed: []Change{}}
	onlyA := map[string][]string{}
	onlyB := map[string][]string{}
	for _, e := range ea {
		if f, ok := inB[e.Path]; ok {
			if f.NarHashString() != e.NarHashString() {
				res.Changed = append(res.Changed, Change{Name: pathName(e.Path), From: e.Path, To: e.Path})
			}
			continue
		}
		onlyA[pathName(e.Path)] = append(onlyA[pathName(e.Path)], e.Path)
	}
	for _, e := range eb {
		if _, ok := inA[e.Path]; !ok {
			onlyB[pathName(e.Path)] = append(onlyB[pathName(e.Path)], e.Path)
		}
	}
	for name, as := range onlyA {
		bs := onlyB[name]
		if len(as) == 1 && len(bs) == 1 {
			res.Changed = append(res.Changed, Change{Name: name, From: as[0], To: bs[0]})
			delete(onlyB, name)
			continue
		}
		res.Removed = append(res.Removed, as...)
	}
	for _, bs := range onlyB {
		res.Added = append(res.Added, bs...)
	}
	sort.Strings(res.Added)
	sort.Strings(res.Removed)
	sort.Slice(res.Changed, func(i, j int) bool {
		if res.Changed[i].Name != res.Changed[j].Name {
			return res.Changed[i].Name < res.Changed[j].Name
		}
		return res.Changed[i].From < res.Changed[j].From
	})
	return res
}

// pathName is the name part of a store path (after "<hash>-").
func pathName(p string) string {
	base := p[strings.LastIndexByte(p, '/')+1:]
	_, name, _ := strings.Cut(base, "-")
	return name
}

// ExportCAR writes the closure c (the Closure record, every StorePathInfo and
// every NAR block) to w as one CARv1 with c as its root.
func ExportCAR(ctx context.Context, st *store.Store, c cid.Cid, w io.Writer) error {
	if _, err := LoadClosure(ctx, st.Blockstore(), c); err != nil {
		return err
	}
	return st.ExportCAR(ctx, w, c, store.ExportOptions{})
}

// ImportCAR reads a CAR written by ExportCAR: its blocks are checked against
// their CIDs and stored; then the closure is verified like Verify (every NAR
// re-hashed, completeness) and only then pinned and indexed for the binary
// cache. A CAR whose single root is not a valid, complete closure pins and
// indexes nothing.
func ImportCAR(ctx context.Context, st *store.Store, db *badger.DB, r io.Reader) (*VerifyResult, error) {
	// Hold the roots the header names before the blocks are written, so
	// that no GC between ImportCAR's return and the pin takes them. The
	// header is read from a copy of the first bytes, which are then fed to
	// ImportCAR again; a header that does not parse here is left for
	// ImportCAR to report.
	var head bytes.Buffer
	fl := inflightOf(st)
	if br, err := car.NewBlockReader(io.TeeReader(io.LimitReader(r, 4<<20), &head), car.MaxAllowedHeaderSize(1<<20)); err == nil {
		for _, root := range br.Roots {
			fl.add(root)
		}
		defer fl.remove(br.Roots)
	}
	res, err := st.ImportCAR(ctx, io.MultiReader(&head, r), store.ImportOptions{})
	if err != nil {
		return nil, fmt.Errorf("closure CAR: %w", err)
	}
	if len(res.Roots) != 1 {
		return nil, fmt.Errorf("%w: closure CAR has %d roots, want 1", ErrBadRecord, len(res.Roots))
	}
	// The blocks are stored and checked against their CIDs: verify, pin
	// and index them where they are.
	c := res.Roots[0]
	fl.add(c) // already held unless the header parsed only in ImportCAR
	defer fl.remove([]cid.Cid{c})
	return IndexStored(ctx, st, db, c)
}

// MarshalJSON renders CIDs as strings.
func (r VerifyResult) MarshalJSON() ([]byte, error) {
	type plain VerifyResult
	return json.Marshal(struct {
		plain
		Closure string `json:"closure"`
	}{plain(r), r.Closure.String()})
}
