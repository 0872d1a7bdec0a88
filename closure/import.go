package closure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// Source is where a closure comes from: the local Nix, a binary cache.
type Source interface {
	// StoreDir is the store directory of the source's paths.
	StoreDir() string
	// Closure returns the path infos of the closure of the store path
	// root, in any order. It need not check completeness.
	Closure(ctx context.Context, root string) ([]PathInfo, error)
	// NAR opens the uncompressed NAR of pi. Import checks its hash, size
	// and structure; a source may check more (a binary cache checks the
	// compressed file's FileHash).
	NAR(ctx context.Context, pi PathInfo) (io.ReadCloser, error)
}

// ImportOptions configure Import.
type ImportOptions struct {
	// Progress, if set, is called with the NAR bytes stored so far and
	// the total NAR size of the closure. It may be called from several
	// goroutines, never concurrently.
	Progress func(done, total int64)
	// Jobs is the number of NARs imported at once (default 2). NARs
	// larger than 8 MiB are imported one at a time whatever Jobs is; each
	// NAR in flight holds at most 4 MiB of stream buffers plus what the
	// store's write pipeline buffers.
	Jobs int
	// PinName names the closure's pin (default "closure <root>").
	PinName string
}

// ImportResult reports an import.
type ImportResult struct {
	// Closure is the CID of the Closure record, pinned recursively.
	Closure cid.Cid `json:"closure"`
	// Root is the root store path.
	Root string `json:"root"`
	// Paths is the number of store paths in the closure.
	Paths int `json:"paths"`
	// NarBytes is the total NAR size of the closure.
	NarBytes int64 `json:"narBytes"`
	// Reused counts paths already imported earlier with the same narHash,
	// whose NAR was not fetched again.
	Reused int `json:"reused"`
}

// largeNAR is the NAR size above which NARs are imported one at a time.
const largeNAR = 8 << 20

// ImportMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit)
// that `agentix-store closure import` runs with unless GOMEMLIMIT is set.
// An import's live heap is bounded (the stream buffers and the store's write
// pipeline, whatever the NAR sizes), and the limit keeps the garbage
// collector from letting the heap grow to twice that: it is what bounds an
// import's peak RSS (see the package doc; 48 MiB instead of 56 MiB took
// 7–18 MB off the measured peaks, at the same speed). Long-running
// processes set their own.
const ImportMemoryLimit = 48 << 20

// Import imports the closure of root from src into st and indexes it in db.
//
// Each path's NAR is streamed from src into st as a UnixFS file chunked with
// buzhash, checked against CheckNAR and hashed on the way, then compared with
// the path info's narHash and narSize; a mismatch aborts the import with a
// *HashMismatchError naming the store path and both hashes. The set of path
// infos must be complete (*MissingReferenceError otherwise) and every path and
// reference must be in src's store dir (*StoreDirError). A path that an
// earlier import stored with the same narHash is reused, not fetched again.
//
// Only once every NAR is stored and checked are one StorePathInfo record per
// path and the Closure record written, the Closure pinned recursively and the
// index entries (used by the binary-cache handler) written. A failed import
// pins and indexes nothing; the blocks it wrote stay unpinned until GC.
func Import(ctx context.Context, st *store.Store, db *badger.DB, src Source, root string, o ImportOptions) (*ImportResult, error) {
	storeDir := src.StoreDir()
	root, err := RootStorePath(root, storeDir)
	if err != nil {
		return nil, err
	}
	infos, err := src.Closure(ctx, root)
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]PathInfo, len(infos))
	var total int64
	for _, pi := range infos {
		if err := checkStorePath(pi.Path, storeDir, ""); err != nil {
			return nil, err
		}
		for _, ref := range pi.References {
			if err := checkStorePath(ref, storeDir, pi.Path); err != nil {
				return nil, err
			}
		}
		byPath[pi.Path] = pi
		total += pi.NarSize
	}
	if _, ok := byPath[root]; !ok {
		return nil, fmt.Errorf("%w: the source's closure of %s does not contain %s itself", ErrNotFound, root, root)
	}
	if err := CheckComplete(infos); err != nil {
		return nil, err
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Path < infos[j].Path })

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fl := inflightOf(st)
	var held []cid.Cid
	var heldMu sync.Mutex
	track := func(c cid.Cid) { // c is held in fl already
		heldMu.Lock()
		held = append(held, c)
		heldMu.Unlock()
	}
	hold := func(c cid.Cid) {
		fl.add(c)
		track(c)
	}
	defer func() { fl.remove(held) }()

	var (
		progMu sync.Mutex
		done   atomic.Int64
	)
	report := func() {
		if o.Progress != nil {
			progMu.Lock()
			o.Progress(done.Load(), total)
			progMu.Unlock()
		}
	}

	records := make([]*StorePathInfo, len(infos))
	var reused atomic.Int64
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 2
	}
	// Large NARs are imported one at a time (by job 0, largest first) so
	// that the memory of the store's write pipeline, which a large NAR
	// fills, is taken once; the other jobs import the small ones, and job 0
	// joins them when no large one is left.
	var large, small []int
	for i, pi := range infos {
		if pi.NarSize > largeNAR {
			large = append(large, i)
		} else {
			small = append(small, i)
		}
	}
	sort.SliceStable(large, func(x, y int) bool { return infos[large[x]].NarSize > infos[large[y]].NarSize })
	var queueMu sync.Mutex
	next := func(job int) (int, bool) {
		queueMu.Lock()
		defer queueMu.Unlock()
		if ctx.Err() != nil {
			return 0, false
		}
		if job == 0 && len(large) > 0 {
			i := large[0]
			large = large[1:]
			return i, true
		}
		if len(small) > 0 {
			i := small[0]
			small = small[1:]
			return i, true
		}
		return 0, false
	}
	errs := make(chan error, jobs)
	var wg sync.WaitGroup
	for job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := next(job)
				if !ok {
					return
				}
				pi := infos[i]
				if r := reusable(ctx, st, db, pi, hold); r != nil {
					records[i] = r
					reused.Add(1)
					done.Add(pi.NarSize)
					report()
					continue
				}
				r, err := importPath(ctx, st, src, pi, func(n int64) {
					done.Add(n)
					report()
				}, fl, track)
				if err != nil {
					errs <- err
					cancel()
					return
				}
				records[i] = r
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Records and pin under the GC lock: no GC can run between writing a
	// record block and pinning the Closure that reaches it.
	cl := &Closure{Root: root, StoreDir: storeDir, Paths: make([]ClosureEntry, len(infos))}
	recs := make(map[string]*StorePathInfo, len(infos))
	spiCids := make(map[string]cid.Cid, len(infos))
	name := o.PinName
	if name == "" {
		name = "closure " + root
	}
	cc, err := func() (cid.Cid, error) {
		unlock := st.GCLock()
		defer unlock()
		for i, r := range records {
			c, err := putRecord(ctx, st, r, storePathInfoType)
			if err != nil {
				return cid.Undef, err
			}
			cl.Paths[i] = ClosureEntry{Path: r.StorePath, Info: cidLink(c)}
			recs[r.StorePath] = r
			spiCids[r.StorePath] = c
		}
		cc, err := putRecord(ctx, st, cl, closureType)
		if err != nil {
			return cid.Undef, err
		}
		if err := st.PinHeld(ctx, cc, store.PinOptions{Name: name}); err != nil {
			return cid.Undef, fmt.Errorf("pin closure %s of %s: %w", cc, root, err)
		}
		return cc, nil
	}()
	if err != nil {
		return nil, err
	}
	if err := index(db, cc, cl, recs, spiCids, total); err != nil {
		return nil, err
	}
	return &ImportResult{Closure: cc, Root: root, Paths: len(infos), NarBytes: total, Reused: int(reused.Load())}, nil
}

// importPath streams one NAR from src into st and returns its record. The
// NAR's CID is held in fl from the moment it is stored; track is told it
// when the import goes on with it.
func importPath(ctx context.Context, st *store.Store, src Source, pi PathInfo, progress func(delta int64), fl *inflight, track func(cid.Cid)) (*StorePathInfo, error) {
	if w, ok := src.(narWriter); ok && pi.NarSize <= smallNAR {
		return importSmall(ctx, st, w, pi, progress, fl, track)
	}
	rc, err := src.NAR(ctx, pi)
	if err != nil {
		return nil, fmt.Errorf("fetch NAR of %s: %w", pi.Path, err)
	}
	var last int64
	res, err := storeNAR(ctx, st, fl, rc, pi.Path, func(n int64) {
		progress(n - last)
		last = n
	})
	closeErr := rc.Close()
	if err != nil {
		var de *DumpError
		if errors.As(closeErr, &de) {
			// The NAR was cut short because the path could not be
			// read: that, not the truncation, is the failure.
			return nil, fmt.Errorf("fetch NAR of %s: %w", pi.Path, closeErr)
		}
		return nil, err
	}
	track(res.CID)
	got := FormatHash(res.Hash)
	if got != pi.NarHashString() || res.Size != pi.NarSize {
		return nil, &HashMismatchError{StorePath: pi.Path, WantHash: pi.NarHashString(), GotHash: got, WantSize: pi.NarSize, GotSize: res.Size}
	}
	if closeErr != nil {
		// The NAR checked out but the source failed at the end (e.g. a
		// nix-store process that exited non-zero, a bad FileHash).
		return nil, fmt.Errorf("fetch NAR of %s: %w", pi.Path, closeErr)
	}
	return newStorePathInfo(pi, res.CID), nil
}

// narWriter is a Source that writes a NAR in the caller's goroutine
// (LocalNix): Import buffers small NARs whole, so hashing, checking and
// storing them needs no stream machinery.
type narWriter interface {
	WriteNAR(ctx context.Context, pi PathInfo, w io.Writer) error
}

// smallNAR is the NAR size up to which a narWriter's NAR is buffered whole
// (one buffer per job).
const smallNAR = 1 << 20

var smallBufs = sync.Pool{New: func() any { b := make([]byte, 0, smallNAR); return &b }}

// smallSink hashes and counts everything written to it and keeps it in buf
// while it fits in max bytes (a NAR longer than its narSize is hashed to
// the end for the error message, not kept).
type smallSink struct {
	h    hash.Hash
	n    int64
	max  int64
	buf  []byte
	over bool
}

func (s *smallSink) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.n += int64(len(p))
	if !s.over {
		if s.n <= s.max {
			s.buf = append(s.buf, p...)
		} else {
			s.over = true
		}
	}
	return len(p), nil
}

// importSmall imports a NAR of at most smallNAR bytes (as its path info
// claims) from w: written into a buffer while hashed, compared with the
// narHash and narSize, checked (CheckNAR), stored. Held in fl and tracked as
// importPath does.
func importSmall(ctx context.Context, st *store.Store, w narWriter, pi PathInfo, progress func(delta int64), fl *inflight, track func(cid.Cid)) (*StorePathInfo, error) {
	bp := smallBufs.Get().(*[]byte)
	defer func() { *bp = (*bp)[:0]; smallBufs.Put(bp) }()
	sink := &smallSink{h: sha256.New(), max: pi.NarSize, buf: (*bp)[:0]}
	if err := w.WriteNAR(ctx, pi, sink); err != nil {
		return nil, fmt.Errorf("fetch NAR of %s: %w", pi.Path, err)
	}
	if got := FormatHash(sumHash(sink.h)); got != pi.NarHashString() || sink.n != pi.NarSize {
		return nil, &HashMismatchError{StorePath: pi.Path, WantHash: pi.NarHashString(), GotHash: got, WantSize: pi.NarSize, GotSize: sink.n}
	}
	if err := checkNAR(bytes.NewReader(sink.buf), pi.Path); err != nil {
		return nil, err
	}
	p := fl.begin()
	c, err := st.Add(ctx, p.reader(bytes.NewReader(sink.buf)), store.AddOptions{Chunker: NARChunker})
	if testHookAfterAdd != nil {
		testHookAfterAdd()
	}
	fl.finish(p, c)
	if err != nil {
		return nil, fmt.Errorf("store NAR of %s: %w", pi.Path, err)
	}
	track(c)
	progress(sink.n)
	return newStorePathInfo(pi, c), nil
}

// reusable returns the record of pi stored by an earlier import when it has
// the same narHash, references and a stored NAR root; else nil. The NAR is
// held (hold) before it is looked for, so a GC cannot take it in between.
func reusable(ctx context.Context, st *store.Store, db *badger.DB, pi PathInfo, hold func(cid.Cid)) *StorePathInfo {
	c, err := LookupHashPart(db, pi.HashPart())
	if err != nil {
		return nil
	}
	r, err := LoadStorePathInfo(ctx, st, c)
	if err != nil || r.StorePath != pi.Path || r.NarHash != pi.NarHashString() || r.NarSize != pi.NarSize {
		return nil
	}
	hold(r.NARCid())
	if ok, err := st.Blockstore().Has(ctx, r.NARCid()); err != nil || !ok {
		return nil
	}
	// Keep this import's metadata (signatures may differ); the NAR is the
	// same bytes.
	return newStorePathInfo(pi, r.NARCid())
}

// RootStorePath returns the top-level store path of p: p itself when it is
// one, the store path it lies in when it is a path inside one, or, for a
// symlink such as ./result, the store path it resolves to.
func RootStorePath(p, storeDir string) (string, error) {
	if storeDir == "" {
		storeDir = DefaultStoreDir
	}
	top := func(p string) (string, bool) {
		rest, ok := strings.CutPrefix(filepath.Clean(p), storeDir+"/")
		if !ok {
			return "", false
		}
		base, _, _ := strings.Cut(rest, "/")
		sp := storeDir + "/" + base
		return sp, checkStorePath(sp, storeDir, "") == nil
	}
	if sp, ok := top(p); ok {
		return sp, nil
	}
	if !strings.HasPrefix(p, storeDir+"/") {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			if sp, ok := top(resolved); ok {
				return sp, nil
			}
		}
	}
	return "", &StoreDirError{Path: p, StoreDir: storeDir}
}

// ErrSourceFailed wraps an error of a source process or server.
var ErrSourceFailed = errors.New("closure source failed")

// MarshalJSON renders CIDs as strings.
func (r ImportResult) MarshalJSON() ([]byte, error) {
	type plain ImportResult
	return json.Marshal(struct {
		plain
		Closure string `json:"closure"`
	}{plain(r), r.Closure.String()})
}
