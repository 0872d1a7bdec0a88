package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

// ImportOptions configure ImportCAR.
type ImportOptions struct {
	// Pin pins every root of the CAR recursively after the import. The
	// DAG under every root must then be complete (in the CAR or already in
	// the store), which is checked before anything is written.
	Pin bool
	// PinName names the pins created by Pin.
	PinName string
	// Progress, when set, is called with the number of input bytes read so
	// far, while the CAR is read and verified.
	Progress func(int64)
	// TempDir is where a non-seekable input larger than 8 MiB is spooled
	// ("" = os.TempDir).
	TempDir string
}

// ImportResult reports a successful import.
type ImportResult struct {
	// Roots are the roots named in the CAR header, in header order.
	Roots []cid.Cid
	// Blocks is the number of distinct blocks in the CAR.
	Blocks int
	// Bytes is the total size of those blocks' data.
	Bytes int64
}

// ExportOptions configure ExportCAR.
type ExportOptions struct {
	// Version is the CAR version to write: 1 or 2 (0 means 1).
	Version int
	// Progress, when set, is called with the number of bytes written to
	// the output so far.
	Progress func(int64)
	// TempDir is where a CARv2 is assembled before being copied to the
	// output ("" = os.TempDir).
	TempDir string
}

// importBatchBytes bounds the block data buffered before a write batch flush.
const importBatchBytes = 16 << 20

// ImportCAR reads a CARv1 or CARv2 from r and stores its blocks.
//
// The import is all-or-nothing with respect to its input: it first reads
// the whole CAR, hashing every block and checking it against its CID, checks
// that every root named in the header is in the CAR or already stored, and,
// with Pin, that the DAG under every root is complete; only then does it
// write. A malformed CAR (bad header, truncated section, trailing garbage)
// yields an *InvalidCARError (ErrInvalidCAR), a block whose bytes do not match
// its CID an *InvalidCARError wrapping a *CorruptBlockError (ErrCorrupt), a
// missing root a *MissingRootError (ErrMissingRoot), an incomplete DAG with
// Pin a *MissingBlockError (ErrNotFound); in every such case the store is left
// exactly as it was. Only an I/O failure of the database (or ctx ending)
// during the write pass can leave some blocks written: they are unpinned, and
// the next GC removes them.
//
// A regular *os.File is read twice in place (and its blocks hashed on both
// passes, so a file changed in between cannot slip bad bytes in); any other
// reader is spooled during the first pass, in memory up to 8 MiB and to a
// private temporary file (removed before ImportCAR returns) beyond that.
// ImportCAR holds GCLock for its whole run.
func (s *Store) ImportCAR(ctx context.Context, r io.Reader, o ImportOptions) (ImportResult, error) {
	unlock := s.GCLock()
	defer unlock()

	var (
		src     io.ReadSeeker
		start   int64
		trusted bool
		in      io.Reader
		count   = &countingReader{r: r, progress: o.Progress}
		sp      *spool
	)
	if f, ok := r.(*os.File); ok && isRegular(f) {
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return ImportResult{}, fmt.Errorf("car import: %w", err)
		}
		src, start, in = f, off, count
	} else {
		sp = &spool{dir: o.TempDir}
		defer sp.close()
		trusted, in = true, io.TeeReader(count, sp)
		src = sp
	}

	// Pass 1: parse and verify everything, write nothing.
	res, carLinks, carBad, err := s.verifyCAR(ctx, bufio.NewReaderSize(in, 1<<20), o.Pin)
	if sp != nil && sp.err != nil {
		return ImportResult{}, fmt.Errorf("car import: %w", sp.err)
	}
	if err != nil {
		return ImportResult{}, err
	}
	if o.Pin {
		for _, root := range res.Roots {
			if err := s.checkComplete(ctx, root, carLinks, carBad); err != nil {
				return ImportResult{}, fmt.Errorf("car import: cannot pin root %s: %w", root, err)
			}
		}
	}

	// Pass 2: write.
	if _, err := src.Seek(start, io.SeekStart); err != nil {
		return ImportResult{}, fmt.Errorf("car import: rewind: %w", err)
	}
	if err := s.writeCAR(ctx, bufio.NewReaderSize(src, 1<<20), trusted); err != nil {
		return ImportResult{}, err
	}
	if o.Pin {
		for _, root := range res.Roots {
			if err := s.pinLocked(ctx, root, PinOptions{Name: o.PinName}); err != nil {
				return ImportResult{}, fmt.Errorf("car import: %w", err)
			}
		}
	}
	return res, nil
}

func isRegular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// carReaderOptions are the parser limits for CAR input: blocks of at most
// 8 MiB (go-car's default), a header of at most 1 MiB.
func carReaderOptions() []car.Option {
	return []car.Option{
		car.WithTrustedCAR(true), // we verify ourselves, with typed errors
		car.MaxAllowedHeaderSize(1 << 20),
		car.MaxAllowedSectionSize(8 << 20),
	}
}

// verifyCAR is the first import pass. With wantLinks it also returns the
// links of every block (keyed by CID bytes) for the completeness check.
func (s *Store) verifyCAR(ctx context.Context, r io.Reader, wantLinks bool) (ImportResult, map[string][]cid.Cid, map[string]error, error) {
	var res ImportResult
	br, err := car.NewBlockReader(r, carReaderOptions()...)
	if err != nil {
		return res, nil, nil, &InvalidCARError{Section: -1, Err: err}
	}
	res.Roots = br.Roots
	present := map[string]struct{}{}
	var carLinks map[string][]cid.Cid
	carBad := map[string]error{}
	if wantLinks {
		carLinks = map[string][]cid.Cid{}
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return res, nil, nil, err
		}
		blk, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = errors.New("truncated section")
			}
			return res, nil, nil, &InvalidCARError{Section: i, Err: err}
		}
		c := blk.Cid()
		if err := verify(c, blk.RawData()); err != nil {
			return res, nil, nil, &InvalidCARError{Section: i, Err: err}
		}
		if _, dup := present[string(c.Hash())]; !dup {
			present[string(c.Hash())] = struct{}{}
			res.Blocks++
			res.Bytes += int64(len(blk.RawData()))
		}
		if wantLinks {
			ls, err := Links(blk)
			if err != nil {
				// The block is stored as is, but a DAG through it cannot
				// be pinned; checkComplete reports it if a root needs it.
				carBad[c.KeyString()] = err
			}
			carLinks[c.KeyString()] = ls
		}
	}
	for _, root := range res.Roots {
		if _, ok := present[string(root.Hash())]; ok {
			continue
		}
		ok, err := s.bs.Has(ctx, root)
		if err != nil {
			return res, nil, nil, fmt.Errorf("car import: %w", err)
		}
		if !ok {
			return res, nil, nil, &MissingRootError{Cid: root}
		}
	}
	return res, carLinks, carBad, nil
}

// checkComplete walks the DAG under root over the CAR's blocks (by their
// recorded links) and the store's, failing on the first block in neither.
func (s *Store) checkComplete(ctx context.Context, root cid.Cid, carLinks map[string][]cid.Cid, carBad map[string]error) error {
	seen := map[string]struct{}{}
	stack := []walkItem{{c: root}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := it.c.KeyString()
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		var links []cid.Cid
		if ls, ok := carLinks[k]; ok {
			if ls == nil && it.c.Type() != cid.Raw {
				if derr, bad := carBad[k]; bad {
					return derr
				}
			}
			links = ls
		} else if it.c.Type() == cid.Raw {
			ok, err := s.bs.Has(ctx, it.c)
			if err != nil {
				return err
			}
			if !ok {
				return &MissingBlockError{Cid: it.c, Parent: it.parent}
			}
		} else {
			blk, err := s.bs.Get(ctx, it.c)
			if errors.Is(err, ErrNotFound) {
				return &MissingBlockError{Cid: it.c, Parent: it.parent}
			}
			if err != nil {
				return err
			}
			if links, err = Links(blk); err != nil {
				return err
			}
		}
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, walkItem{c: links[i], parent: it.c})
		}
	}
	return nil
}

// writeCAR is the second import pass: it stores the (already verified)
// blocks in write batches, re-verifying them unless the source is our own
// spool.
func (s *Store) writeCAR(ctx context.Context, r io.Reader, trusted bool) error {
	br, err := car.NewBlockReader(r, carReaderOptions()...)
	if err != nil {
		return &InvalidCARError{Section: -1, Err: fmt.Errorf("changed between passes: %w", err)}
	}
	var (
		batch []blocks.Block
		size  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.bs.PutMany(ctx, batch); err != nil {
			return fmt.Errorf("car import: write: %w", err)
		}
		batch, size = batch[:0], 0
		return nil
	}
	for i := 0; ; i++ {
		blk, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &InvalidCARError{Section: i, Err: fmt.Errorf("changed between passes: %w", err)}
		}
		if !trusted {
			if err := verify(blk.Cid(), blk.RawData()); err != nil {
				return &InvalidCARError{Section: i, Err: err}
			}
		}
		batch = append(batch, blk)
		size += len(blk.RawData())
		if size >= importBatchBytes || len(batch) >= 4096 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// ExportCAR writes the DAG under root to w as a CAR of version o.Version
// with root as its only root, blocks in Walk order (depth-first pre-order,
// each block once; identity-hash blocks are left out as CAR allows).
//
// The DAG is checked to be complete before the first byte is written, so a
// missing block yields a *MissingBlockError and an empty w. A block found
// corrupt while writing stops the export with a *CorruptBlockError, leaving a
// truncated CARv1 in w (a CARv2 is assembled in a temporary file and w gets
// nothing). A CARv2 carries a full index (go-car's default,
// multihash-sorted). ExportCAR holds GCLock for its whole run.
func (s *Store) ExportCAR(ctx context.Context, w io.Writer, root cid.Cid, o ExportOptions) error {
	if o.Version == 0 {
		o.Version = 1
	}
	if o.Version != 1 && o.Version != 2 {
		return fmt.Errorf("car export: unsupported CAR version %d (want 1 or 2)", o.Version)
	}
	unlock := s.GCLock()
	defer unlock()

	if err := s.walk(ctx, root, map[string]struct{}{}, leafHas, func(cid.Cid, blocks.Block) error { return nil }); err != nil {
		return fmt.Errorf("car export %s: %w", root, err)
	}
	out := &countingWriter{w: w, progress: o.Progress}
	if o.Version == 1 {
		bw := bufio.NewWriterSize(out, 1<<20)
		sc, err := storage.NewWritable(bw, []cid.Cid{root}, car.WriteAsCarV1(true))
		if err != nil {
			return fmt.Errorf("car export: %w", err)
		}
		if err := s.putDAG(ctx, sc, root); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("car export: write: %w", err)
		}
		return nil
	}

	tmp, err := os.CreateTemp(o.TempDir, "agentix-car-export-*")
	if err != nil {
		return fmt.Errorf("car export: temp file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	sc, err := storage.NewWritable(tmp, []cid.Cid{root})
	if err != nil {
		return fmt.Errorf("car export: %w", err)
	}
	if err := s.putDAG(ctx, sc, root); err != nil {
		return err
	}
	if err := sc.Finalize(); err != nil {
		return fmt.Errorf("car export: finalize: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("car export: %w", err)
	}
	if _, err := io.CopyBuffer(out, tmp, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("car export: write: %w", err)
	}
	return nil
}

// putDAG walks the DAG and writes each block to sc. Raw leaves are copied
// straight from the database (verified) without an intermediate copy.
func (s *Store) putDAG(ctx context.Context, sc storage.WritableCar, root cid.Cid) error {
	err := s.walk(ctx, root, map[string]struct{}{}, leafSkip, func(c cid.Cid, blk blocks.Block) error {
		if blk != nil {
			return sc.Put(ctx, c.KeyString(), blk.RawData())
		}
		err := s.bs.View(ctx, c, func(v []byte) error { return sc.Put(ctx, c.KeyString(), v) })
		if errors.Is(err, ErrNotFound) {
			return &MissingBlockError{Cid: c}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("car export %s: %w", root, err)
	}
	return nil
}

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

type countingWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

// spoolMemMax is how much of a non-seekable input ImportCAR keeps in memory
// before spooling it to a temporary file instead.
var spoolMemMax = 8 << 20

// spool keeps what is written to it in memory up to spoolMemMax bytes, then
// in a private temporary file, and reads it back through Seek and Read.
type spool struct {
	dir string
	mem []byte
	f   *os.File
	r   io.ReadSeeker
	err error
}

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && len(s.mem)+len(p) <= spoolMemMax {
		s.mem = append(s.mem, p...)
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "agentix-car-import-*")
		if err != nil {
			s.err = fmt.Errorf("spool: %w", err)
			return 0, s.err
		}
		s.f = f
		if _, err := f.Write(s.mem); err != nil {
			s.err = fmt.Errorf("spool: %w", err)
			return 0, s.err
		}
		s.mem = nil
	}
	n, err := s.f.Write(p)
	if err != nil {
		s.err = fmt.Errorf("spool: %w", err)
	}
	return n, s.err
}

func (s *spool) Seek(off int64, whence int) (int64, error) {
	if s.r == nil {
		if s.f != nil {
			s.r = s.f
		} else {
			s.r = bytes.NewReader(s.mem)
		}
	}
	return s.r.Seek(off, whence)
}

func (s *spool) Read(p []byte) (int, error) {
	if s.r == nil {
		return 0, errors.New("spool: read before seek")
	}
	return s.r.Read(p)
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}
