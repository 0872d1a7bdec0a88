package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/agentix/agentix-store/kv"
	chunk "github.com/ipfs/boxo/chunker"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	pool "github.com/libp2p/go-buffer-pool"
	mh "github.com/multiformats/go-multihash"
)

// AddOptions configure Add, AddFile and AddFiles.
type AddOptions struct {
	// Chunker is a chunker spec accepted by ParseChunker; empty means
	// DefaultChunker.
	Chunker string
	// Progress, if set, is called with the number of bytes consumed from the
	// input so far, each time more are consumed. It is called from a single
	// goroutine (not necessarily the caller's), never concurrently.
	Progress func(bytes int64)
	// Pin pins the resulting root recursively before Add returns.
	Pin bool
}

// Tuning of the add pipeline. Memory held by one add is bounded by about
// (readAhead + hash workers) chunks plus (writeQueue + 2) batches.
const (
	readAhead    = 8       // chunks read and hashed ahead of the DAG builder
	batchBytes   = 2 << 20 // bytes per write batch
	batchBlocks  = 1024    // blocks per write batch
	writeQueue   = 1       // full batches queued for the writer
	maxHashProcs = 4       // parallel leaf hashers, at most
	releaseEvery = 64      // blocks between kv.ReleaseLogPages calls
)

// Add imports the bytes of r as a UnixFS file and returns its root CID.
//
// The DAG is exactly what `ipfs add --cid-version=1 --chunker=<o.Chunker>`
// (Kubo) produces for the same bytes: CIDv1, sha2-256, raw leaves, balanced
// layout with 174 links per node, no file metadata. A file that fits in one
// chunk is a single raw block, so its CID is a bafkrei… raw CID.
//
// Add holds GCLock for its whole duration, so a concurrent GC never collects
// the blocks of an add in flight. If Add fails (read error, cancelled ctx,
// full disk), the blocks already written stay in the store unpinned and the
// next GC collects them; nothing is pinned.
//
// Internally the work is pipelined: one goroutine reads and chunks r, leaf
// hashing runs on all cores, and blocks are written to the database in
// batches by another goroutine while boxo's balanced builder lays out the DAG.
func (s *Store) Add(ctx context.Context, r io.Reader, o AddOptions) (cid.Cid, error) {
	return s.add(ctx, r, o, nil)
}

// add is Add; when h is not nil the root is held in h before GCLock is
// released.
func (s *Store) add(ctx context.Context, r io.Reader, o AddOptions, h *Hold) (cid.Cid, error) {
	ch, err := ParseChunker(o.Chunker)
	if err != nil {
		return cid.Undef, err
	}
	unlock := s.GCLock()
	defer unlock()

	root, err := s.addLocked(ctx, r, ch, o.Progress)
	if err != nil {
		return cid.Undef, err
	}
	if o.Pin {
		if err := s.pinLocked(ctx, root, PinOptions{}); err != nil {
			return cid.Undef, fmt.Errorf("add: pin %s: %w", root, err)
		}
	}
	if h != nil {
		h.keepLocked(root)
	}
	return root, nil
}

// AddFile adds the file at path like Add.
func (s *Store) AddFile(ctx context.Context, path string, o AddOptions) (cid.Cid, error) {
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("add: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return cid.Undef, fmt.Errorf("add %s: %w", path, ErrIsDirectory)
	}
	c, err := s.Add(ctx, f, o)
	if err != nil {
		return cid.Undef, fmt.Errorf("add %s: %w", path, err)
	}
	return c, nil
}

// ErrIsDirectory is returned (wrapped) by AddFile and AddFiles for a
// directory: the store adds files only, one CID each.
var ErrIsDirectory = errors.New("is a directory")

// AddFiles adds each file like AddFile, in order, without wrapping them in a
// directory, and returns one CID per path. It stops at the first failure and
// returns the CIDs of the files added before it with an error naming the
// path; those earlier files are complete (and pinned if o.Pin).
func (s *Store) AddFiles(ctx context.Context, paths []string, o AddOptions) ([]cid.Cid, error) {
	if _, err := ParseChunker(o.Chunker); err != nil {
		return nil, err
	}
	out := make([]cid.Cid, 0, len(paths))
	for _, p := range paths {
		c, err := s.AddFile(ctx, p, o)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// kuboCidBuilder is what Kubo uses for --cid-version=1: sha2-256, full
// length; the codec is set per node (dag-pb for internal nodes, raw for
// leaves).
var kuboCidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}

func (s *Store) addLocked(ctx context.Context, r io.Reader, ch Chunker, progress func(int64)) (cid.Cid, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if progress != nil {
		r = &progressReader{r: r, fn: progress}
	}

	// Fast path: an input that the chunker always leaves in one chunk is a
	// single raw leaf, which is also the root (what the balanced builder
	// produces for one chunk, and for none: the empty raw block).
	peek := pool.Get(ch.singleChunkMax() + 1)
	recycle := true // false while the reader goroutine may still read peek
	defer func() {
		if recycle {
			pool.Put(peek)
		}
	}()
	n, err := io.ReadFull(r, peek)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		data := peek[:n]
		c := rawLeafCid(data)
		blk, err := blocks.NewBlockWithCid(data, c)
		if err == nil {
			err = s.putNew(ctx, []blocks.Block{blk})
		}
		if err != nil {
			return cid.Undef, fmt.Errorf("add: %w", s.noSpace(err))
		}
		return c, nil
	case err != nil:
		return cid.Undef, fmt.Errorf("add: %w", err)
	}
	r = io.MultiReader(bytes.NewReader(peek), r)

	ps := newPrehashSplitter(ctx, ch.Splitter(r))
	// Both splitters take every chunk from the buffer pool (see
	// Chunker.Splitter): return them to it once written.
	w := newBatchWriter(ctx, s, true)

	params := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: prehashBuilder{ps: ps, codec: cid.DagProtobuf},
		Dagserv:    w,
	}
	db, err := params.New(ps)
	if err != nil {
		return cid.Undef, fmt.Errorf("add: %w", err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		// Stop the reader without waiting for it: it may be blocked in
		// r.Read. The blocks already written stay unpinned.
		recycle = false
		cancel()
		_ = w.close()
		return cid.Undef, fmt.Errorf("add: %w", err)
	}
	if err := w.close(); err != nil {
		recycle = false
		cancel()
		return cid.Undef, fmt.Errorf("add: %w", err)
	}
	ps.wait()
	return nd.Cid(), nil
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
	n  int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		p.fn(p.n)
	}
	return n, err
}

// leaf is one chunk travelling through the pipeline. c is valid once done is
// closed.
type leaf struct {
	data []byte
	err  error
	c    cid.Cid
	done chan struct{}
}

// prehashSplitter is a chunk.Splitter that reads and chunks its input in a
// goroutine and hashes the chunks on several cores ahead of the consumer. The
// chunks come out in input order; prehashBuilder then hands the builder the
// CID computed for the chunk it is turning into a raw leaf, so boxo's builder
// runs unchanged but never hashes a leaf itself.
type prehashSplitter struct {
	ctx     context.Context
	src     chunk.Splitter
	ordered chan *leaf
	last    *leaf
	wg      sync.WaitGroup
}

func newPrehashSplitter(ctx context.Context, src chunk.Splitter) *prehashSplitter {
	ps := &prehashSplitter{ctx: ctx, src: src, ordered: make(chan *leaf, readAhead)}
	workers := min(runtime.GOMAXPROCS(0), maxHashProcs)
	jobs := make(chan *leaf, readAhead)
	ps.wg.Add(1 + workers)
	for range workers {
		go func() {
			defer ps.wg.Done()
			for l := range jobs {
				l.c = rawLeafCid(l.data)
				close(l.done)
			}
		}()
	}
	go func() {
		defer ps.wg.Done()
		defer close(ps.ordered)
		defer close(jobs)
		for {
			data, err := src.NextBytes()
			if data == nil && err == nil {
				err = io.EOF
			}
			l := &leaf{data: data, err: err, done: make(chan struct{})}
			if err != nil {
				close(l.done)
			} else {
				select {
				case jobs <- l:
				case <-ctx.Done():
					return
				}
			}
			select {
			case ps.ordered <- l:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ps
}

func rawLeafCid(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	h, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		panic(err) // unreachable: sha2-256 with a 32-byte digest
	}
	return cid.NewCidV1(cid.Raw, h)
}

func (ps *prehashSplitter) Reader() io.Reader { return ps.src.Reader() }

func (ps *prehashSplitter) NextBytes() ([]byte, error) {
	select {
	case l, ok := <-ps.ordered:
		if !ok {
			if err := ps.ctx.Err(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		<-l.done
		if l.err != nil {
			ps.last = nil
			return nil, l.err
		}
		ps.last = l
		return l.data, nil
	case <-ps.ctx.Done():
		return nil, ps.ctx.Err()
	}
}

// wait waits for the reader and hashers to stop; the context must be done
// or the input fully consumed.
func (ps *prehashSplitter) wait() { ps.wg.Wait() }

// prehashBuilder is the cid.Builder given to boxo's DAG builder. For the
// chunk most recently returned by the splitter (the very slice) it returns
// the precomputed raw-leaf CID; anything else (internal dag-pb nodes, the
// empty file) it hashes like cid.V1Builder with sha2-256.
type prehashBuilder struct {
	ps    *prehashSplitter
	codec uint64
}

func (b prehashBuilder) Sum(data []byte) (cid.Cid, error) {
	if l := b.ps.last; b.codec == cid.Raw && l != nil && len(data) > 0 &&
		len(data) == len(l.data) && &data[0] == &l.data[0] {
		return l.c, nil
	}
	return kuboCidBuilder.WithCodec(b.codec).Sum(data)
}

func (b prehashBuilder) GetCodec() uint64 { return b.codec }

func (b prehashBuilder) WithCodec(c uint64) cid.Builder {
	return prehashBuilder{ps: b.ps, codec: c}
}

// batchWriter is the ipld.DAGService the builder writes to. Add queues the
// node; full batches are written by a separate goroutine with one badger
// write batch each, skipping blocks the store already has. The first write
// error is sticky: every later Add and close returns it.
type batchWriter struct {
	s       *Store
	ctx     context.Context
	batch   []blocks.Block
	bytes   int
	queue   chan []blocks.Block
	failed  chan struct{} // closed on the first write error
	done    chan struct{} // closed when the writer goroutine exits
	err     error         // set before failed is closed
	closed  bool
	written int  // blocks written since the last kv.ReleaseLogPages
	recycle bool // return raw leaves' buffers to the pool after writing
}

func newBatchWriter(ctx context.Context, s *Store, recycle bool) *batchWriter {
	w := &batchWriter{
		s:       s,
		recycle: recycle,
		ctx:     ctx,
		queue:   make(chan []blocks.Block, writeQueue),
		failed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *batchWriter) run() {
	defer close(w.done)
	for b := range w.queue {
		if w.err != nil {
			continue
		}
		if err := w.s.putNew(w.ctx, b); err != nil {
			err = w.s.noSpace(err)
			w.err = err
			close(w.failed)
			continue
		}
		// The database and the pack have the bytes, and the builder has
		// let go of the leaves (it keeps only their CIDs and sizes): hand
		// the chunk buffers back to the pool the splitter takes them from.
		for _, blk := range b {
			if !w.recycle {
				break
			}
			if rn, ok := blk.(*dag.RawNode); ok {
				pool.Put(rn.RawData())
			}
		}
		// Best effort: keep the add's resident set flat and the disk busy.
		if w.written += len(b); w.written >= releaseEvery {
			w.written = 0
			_ = kv.ReleaseLogPages(w.s.db)
		}
	}
}

func (w *batchWriter) send() error {
	if len(w.batch) == 0 {
		return nil
	}
	select {
	case w.queue <- w.batch:
	case <-w.failed:
		return w.err
	}
	w.batch = make([]blocks.Block, 0, cap(w.batch))
	w.bytes = 0
	return nil
}

// close flushes the last batch, waits for the writer and returns the first
// error.
func (w *batchWriter) close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	err := w.send()
	close(w.queue)
	<-w.done
	if err != nil {
		return err
	}
	return w.err
}

func (w *batchWriter) Add(ctx context.Context, nd ipld.Node) error {
	select {
	case <-w.failed:
		return w.err
	default:
	}
	w.batch = append(w.batch, nd)
	w.bytes += len(nd.RawData())
	if w.bytes >= batchBytes || len(w.batch) >= batchBlocks {
		return w.send()
	}
	return nil
}

func (w *batchWriter) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := w.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func (w *batchWriter) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	return dagGetter{w.s.bs}.Get(ctx, c)
}

func (w *batchWriter) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	return dagGetter{w.s.bs}.GetMany(ctx, cs)
}

func (w *batchWriter) Remove(context.Context, cid.Cid) error {
	return errors.New("store: remove during add is not supported")
}

func (w *batchWriter) RemoveMany(context.Context, []cid.Cid) error {
	return errors.New("store: remove during add is not supported")
}

// ErrNoSpace is returned (wrapped, in a *kv.NoSpaceError naming the data
// directory) by every write when the data directory's filesystem is below
// the database's free-space reserve, or the disk is full, or a file size
// limit was hit. The blocks an Add had already written stay unpinned, for
// GC to collect. It is kv.ErrNoSpace.
var ErrNoSpace = kv.ErrNoSpace

// noSpace marks err with ErrNoSpace if it comes from ENOSPC or EFBIG.
// Badger flattens the errors of its file operations into text, so the errno
// is recognised by its message too.
func (s *Store) noSpace(err error) error { return kv.NoSpace(s.db, err) }

// putNew writes the blocks the store does not already hold (whatever the
// stored length), packing the large ones.
func (s *Store) putNew(ctx context.Context, blks []blocks.Block) error {
	return s.bs.putMany(ctx, blks, true)
}

// dagGetter is an ipld.NodeGetter straight on the Blockstore: every block is
// hash-checked by Blockstore.Get, and its errors (*CorruptBlockError,
// not-found) reach the reader unchanged, also through GetMany.
// BlockGetter is what reading a DAG needs: *Blockstore, any boxo
// blockstore.Blockstore and go-car's read-only blockstore over a CAR all
// satisfy it.
type BlockGetter interface {
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

type dagGetter struct{ bs BlockGetter }

func (g dagGetter) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	blk, err := g.bs.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return decodeUnixFSBlock(blk)
}

func decodeUnixFSBlock(blk blocks.Block) (ipld.Node, error) {
	var (
		nd  ipld.Node
		err error
	)
	switch blk.Cid().Type() {
	case cid.DagProtobuf:
		nd, err = dag.DecodeProtobufBlock(blk)
	case cid.Raw:
		nd, err = dag.DecodeRawBlock(blk)
	default:
		return nil, &UnsupportedCodecError{Cid: blk.Cid()}
	}
	if err != nil {
		return nil, &DecodeError{Cid: blk.Cid(), Err: err}
	}
	return nd, nil
}

// GetMany fetches the blocks with up to getManyProcs goroutines, so that
// reading a block from its pack (cold after an O_DIRECT write) overlaps with
// hashing the previous one. Results arrive in completion order (callers match
// them by CID). A failure stops the fetch: no block after the failed one is
// started, those before it that are in flight are delivered, then one error
// is sent, the first in cs order. Boxo's readers fail every pending request
// with the first error they receive, so this is what makes a read fail
// naming the block it reached rather than a later one that failed sooner.
func (g dagGetter) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs)) // never blocks a sender
	var (
		next     atomic.Int64
		mu       sync.Mutex
		errAt    = int64(len(cs)) // index of the first failed block in cs
		firstErr error
		wg       sync.WaitGroup
	)
	after := func(i int64) bool { // an earlier block failed
		mu.Lock()
		defer mu.Unlock()
		return i > errAt
	}
	for range min(len(cs), getManyProcs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(cs)) || ctx.Err() != nil || after(i) {
					return
				}
				nd, err := g.Get(ctx, cs[i])
				if err != nil {
					mu.Lock()
					if i < errAt {
						errAt, firstErr = i, err
					}
					mu.Unlock()
					return
				}
				if after(i) {
					return
				}
				out <- &ipld.NodeOption{Node: nd}
			}
		}()
	}
	go func() {
		wg.Wait()
		if firstErr != nil {
			out <- &ipld.NodeOption{Err: firstErr}
		}
		close(out)
	}()
	return out
}

// getManyProcs bounds the goroutines of one dagGetter.GetMany.
const getManyProcs = 3

// File is a UnixFS file being read from the store. It is an io.Reader,
// io.Seeker, io.ReaderAt, io.WriterTo and io.Closer. Reads fail with a
// *CorruptBlockError (naming the block) if a block does not hash to its CID,
// and never return the bad bytes. A File is safe for concurrent use; its
// methods are serialised.
type File struct {
	mu   sync.Mutex
	cid  cid.Cid
	dr   uio.DagReader
	size int64
}

// Cat opens the UnixFS file c (a dag-pb file node or a raw block) for
// reading. The File reads blocks lazily; ctx bounds the whole life of the
// File. Close releases it.
func (s *Store) Cat(ctx context.Context, c cid.Cid) (*File, error) {
	return CatFrom(ctx, s.bs, c)
}

// CatFrom is Cat over the blocks of bs, which need not be a Store (a CAR
// read through go-car's read-only blockstore, say). bs is trusted to
// return blocks that hash to their CIDs, as *Blockstore checks.
func CatFrom(ctx context.Context, bs BlockGetter, c cid.Cid) (*File, error) {
	g := dagGetter{bs}
	nd, err := g.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("cat %s: %w", c, err)
	}
	dr, err := uio.NewDagReader(ctx, nd, g)
	if err != nil {
		return nil, fmt.Errorf("cat %s: %w", c, err)
	}
	return &File{cid: c, dr: dr, size: int64(dr.Size())}, nil
}

// Cid returns the file's root CID.
func (f *File) Cid() cid.Cid { return f.cid }

// Size returns the file's size in bytes, as recorded in its root.
func (f *File) Size() int64 { return f.size }

func (f *File) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dr.Read(p)
}

// WriteTo writes the rest of the file to w.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dr.WriteTo(w)
}

// Seek sets the offset for the next Read. Seeking past the end is allowed;
// reads there return io.EOF.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seekLocked(offset, whence)
}

func (f *File) seekLocked(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		cur, err := f.dr.Seek(0, io.SeekCurrent)
		if err != nil {
			return cur, err
		}
		offset += cur
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", f.cid, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek %s: negative offset %d", f.cid, offset)
	}
	return f.dr.Seek(offset, io.SeekStart)
}

// ReadAt reads len(p) bytes at off without moving the Read offset.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", f.cid, off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.dr.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if _, err := f.dr.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(f.dr, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	if _, serr := f.dr.Seek(cur, io.SeekStart); serr != nil && err == nil {
		err = serr
	}
	return n, err
}

// Close releases the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dr.Close()
}

// ErrRange matches every *RangeError with errors.Is.
var ErrRange = errors.New("range not satisfiable")

// RangeError reports a CatRange request outside the file.
type RangeError struct {
	Cid            cid.Cid
	Offset, Length int64
	Size           int64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("range offset %d length %d is outside %s (size %d)", e.Offset, e.Length, e.Cid, e.Size)
}

// Is makes every *RangeError match ErrRange.
func (e *RangeError) Is(target error) bool { return target == ErrRange }

// CatRange returns length bytes of the file c starting at offset; length -1
// means to the end, and a length running past the end is cut at the end. An
// offset beyond the size, a negative offset or a length below -1 yields a
// *RangeError. offset == size is valid and reads nothing.
func (s *Store) CatRange(ctx context.Context, c cid.Cid, offset, length int64) (io.ReadCloser, error) {
	f, err := s.Cat(ctx, c)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > f.size || length < -1 {
		f.Close()
		return nil, &RangeError{Cid: c, Offset: offset, Length: length, Size: f.size}
	}
	if length == -1 || offset+length > f.size {
		length = f.size - offset
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("cat %s: seek to %d: %w", c, offset, err)
	}
	return &rangeReader{Reader: io.LimitReader(f, length), f: f}, nil
}

type rangeReader struct {
	io.Reader
	f *File
}

func (r *rangeReader) Close() error { return r.f.Close() }
