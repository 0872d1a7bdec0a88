package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"
	"weak"
)

// Pack files.
//
// Blocks of at least Options.PackThreshold bytes are not stored in badger but
// appended to pack files in <data dir>/packs (kv.PacksDir), named
// NNNNNNNN.pack by their decimal id (ids start at 1 and only grow). Each block
// starts at a multiple of packAlign and is followed by zero padding up to the
// next multiple, so every block owns whole filesystem blocks: its space can
// be freed by punching a hole without touching its neighbours, and the file
// can be written with O_DIRECT, which bypasses the page cache (the write
// path's bottleneck on the machines this was tuned on).
//
// A block's index entry (badger key kv.PrefixBlocks+multihash) then holds a
// packRef instead of the bytes, told apart by badger's per-entry user
// metadata byte: 0 is an inline value (the block's bytes, as written before
// packs existed), metaPackRef a packRef. The order of a write is
//
//	1. the bytes are appended to the active pack (and fdatasynced with
//	   Options.SyncWrites);
//	2. the index entries are written to badger (and synced with SyncWrites).
//
// so an index entry never points to bytes that were not written: a crash or
// a failed write (disk full) between 1 and 2 leaves unreferenced bytes in the
// pack, which are garbage and never read. On open the writer appends after
// the end of the newest pack (rounded up to packAlign), so such a tail is
// ignored; once the pack is no longer appended to, GC truncates it after its
// last indexed block (garbage followed by later blocks stays until the pack
// is removed). Without SyncWrites nothing is ordered on disk: after a power
// loss an entry may survive whose bytes did not, and reads it as a corrupt
// block.
//
// Deleting a block deletes its index entry, syncs the database, and then
// punches a hole over the block's span. GC also removes every pack file that
// no index entry references any more and truncates each pack after its last
// referenced block (except the pack being appended to and any newer one).

const (
	// DefaultPackThreshold is the smallest block stored in a pack file
	// when Options.PackThreshold is 0: 64 KiB, so the default chunker's
	// 256 KiB raw leaves and most buzhash chunks go to packs while dag-pb
	// nodes and small files stay in badger.
	DefaultPackThreshold = 64 << 10

	packAlign   = 4096    // offset and span alignment of every block
	packRotate  = 1 << 30 // a pack is not appended to once this large
	packStage   = 2 << 20 // aligned staging buffer for unaligned blocks
	packMaxIov  = 512     // iovecs per pwritev (IOV_MAX is 1024)
	metaPackRef = 1       // badger UserMeta of an index entry holding a packRef
	packRefLen  = 16      // encoded packRef: id u32, offset u64, length u32
	packSuffix  = ".pack"
)

// packRef locates a block in a pack: its bytes are n bytes at off in pack id.
type packRef struct {
	id  uint32
	off int64
	n   int64
}

// span is the block's footprint in the pack: its length rounded up to
// packAlign.
func (r packRef) span() int64 { return alignUp(r.n) }

func alignUp(n int64) int64 { return (n + packAlign - 1) &^ (packAlign - 1) }

// encode returns the index value of r: big-endian id (4 bytes), offset (8)
// and length (4).
func (r packRef) encode() []byte {
	v := make([]byte, packRefLen)
	binary.BigEndian.PutUint32(v[0:], r.id)
	binary.BigEndian.PutUint64(v[4:], uint64(r.off))
	binary.BigEndian.PutUint32(v[12:], uint32(r.n))
	return v
}

// errBadPackRef reports an index entry that is tagged as a pack reference but
// does not decode as one.
var errBadPackRef = errors.New("malformed pack reference in the block index")

func decodePackRef(v []byte) (packRef, error) {
	if len(v) != packRefLen {
		return packRef{}, fmt.Errorf("%w: %d bytes, want %d", errBadPackRef, len(v), packRefLen)
	}
	r := packRef{
		id:  binary.BigEndian.Uint32(v[0:]),
		off: int64(binary.BigEndian.Uint64(v[4:])),
		n:   int64(binary.BigEndian.Uint32(v[12:])),
	}
	if r.id == 0 || r.off < 0 || r.off%packAlign != 0 {
		return packRef{}, fmt.Errorf("%w: pack %d offset %d", errBadPackRef, r.id, r.off)
	}
	return r, nil
}

func packName(id uint32) string { return fmt.Sprintf("%08d%s", id, packSuffix) }

// The system calls of the append path, replaceable by tests that simulate a
// filesystem refusing O_DIRECT.
var (
	openDirectFn = openDirect
	pwritevFn    = pwritev
)

// packs manages the pack files of one Blockstore: one active pack being
// appended to (appends are serialised by mu), and read handles for every
// pack opened so far.
type packs struct {
	dir      string
	readOnly bool
	noDirect bool // never use O_DIRECT (Options.NoDirectIO)

	mu     sync.Mutex // guards the append side below
	inited bool
	active uint32   // id appends go to (valid once inited)
	w      *os.File // write handle of the active pack, nil until needed
	direct bool     // w was opened with O_DIRECT
	end    int64    // next append offset in the active pack
	stage  []byte   // packAlign-aligned staging buffer (lazily allocated)
	closed bool

	rmu   sync.RWMutex
	files map[uint32]*os.File // read (and hole-punching) handles
}

func newPacks(dir string, readOnly, noDirect bool) *packs {
	return &packs{dir: dir, readOnly: readOnly, noDirect: noDirect, files: map[uint32]*os.File{}}
}

// writers maps a pack directory to the packs appending to it, so that every
// Blockstore a process opens on one database shares one appender (two would
// write at the same offsets). Entries are weak: a packs that no Blockstore
// uses any more is collected, its files closed by their finalizers, and the
// next Blockstore on the directory starts afresh from the files on disk.
var writers = struct {
	sync.Mutex
	m map[string]weak.Pointer[packs]
}{m: map[string]weak.Pointer[packs]{}}

// openPacks returns the packs of dir, shared with every other open
// Blockstore on it unless readOnly (read-only stores never append).
func openPacks(dir string, readOnly, noDirect bool) *packs {
	if readOnly {
		return newPacks(dir, true, noDirect)
	}
	dir = filepath.Clean(dir)
	writers.Lock()
	defer writers.Unlock()
	if p := writers.m[dir].Value(); p != nil && !p.isClosed() {
		return p
	}
	p := newPacks(dir, false, noDirect)
	wp := weak.Make(p)
	writers.m[dir] = wp
	runtime.AddCleanup(p, func(dir string) {
		writers.Lock()
		defer writers.Unlock()
		if writers.m[dir] == wp {
			delete(writers.m, dir)
		}
	}, dir)
	return p
}

func (p *packs) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// errPacksClosed is returned by writes after Close.
var errPacksClosed = errors.New("block store is closed")

// list returns the ids of the pack files on disk, ascending.
func (p *packs) list() ([]uint32, error) {
	ents, err := os.ReadDir(p.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var ids []uint32
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, packSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, packSuffix), 10, 32)
		if err != nil || id == 0 {
			continue
		}
		ids = append(ids, uint32(id))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// initLocked picks the pack appends go to: the newest pack if it is below
// packRotate (appending after its end, rounded up to packAlign, which skips
// any unindexed tail a crash left), else a new one.
func (p *packs) initLocked() error {
	if p.inited {
		return nil
	}
	ids, err := p.list()
	if err != nil {
		return err
	}
	p.active, p.end = 1, 0
	if len(ids) > 0 {
		last := ids[len(ids)-1]
		fi, err := os.Stat(filepath.Join(p.dir, packName(last)))
		if err != nil {
			return fmt.Errorf("open packs: %w", err)
		}
		if fi.Size() < packRotate {
			p.active, p.end = last, alignUp(fi.Size())
		} else {
			p.active = last + 1
		}
	}
	p.inited = true
	return nil
}

// protectFrom returns the id of the pack appends go to now; every later
// append goes to it or a higher id. GC calls it before taking its snapshot
// of the index, and never removes a pack at or above it.
func (p *packs) protectFrom() (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.initLocked(); err != nil {
		return 0, err
	}
	return p.active, nil
}

// openWriterLocked opens the active pack for appending, with O_DIRECT unless
// that is turned off or the filesystem refuses it (tmpfs: EINVAL), in which
// case it falls back to buffered writes.
func (p *packs) openWriterLocked() error {
	if p.w != nil {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("create pack directory: %w", err)
	}
	path := filepath.Join(p.dir, packName(p.active))
	if !p.noDirect {
		f, err := openDirectFn(path)
		if err == nil {
			p.w, p.direct = f, true
			return nil
		}
		if !errors.Is(err, errNoDirect) {
			return err
		}
		p.noDirect = true // this filesystem will not do better next time
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open pack: %w", err)
	}
	p.w, p.direct = f, false
	return nil
}

// rotateLocked finishes the active pack (fdatasync, close) and makes the
// next id active.
func (p *packs) rotateLocked() error {
	if p.w != nil {
		err := fdatasync(p.w)
		if cerr := p.w.Close(); err == nil {
			err = cerr
		}
		p.w = nil
		if err != nil {
			return fmt.Errorf("finish pack %d: %w", p.active, err)
		}
	}
	p.active++
	p.end = 0
	return nil
}

// aligned reports whether b can be handed to an O_DIRECT write as is.
func aligned(b []byte) bool {
	return len(b) > 0 && len(b)%packAlign == 0 && uintptr(unsafe.Pointer(&b[0]))%packAlign == 0
}

// alignedBuf returns a zeroed n-byte slice whose first byte is at a multiple
// of packAlign.
func alignedBuf(n int) []byte {
	b := make([]byte, n+packAlign)
	off := (packAlign - int(uintptr(unsafe.Pointer(&b[0]))%packAlign)) % packAlign
	return b[off : off+n : off+n]
}

// appendBlocks writes data (each at least one byte) to the active pack and
// returns where each went. Blocks whose memory and length are already
// packAlign-aligned are written from their own memory; the others are copied
// into the staging buffer with their padding. With sync, the pack is
// fdatasynced before appendBlocks returns. On error nothing written by this
// call may be referenced (the space is garbage), and the next append starts
// at the same offset.
func (p *packs) appendBlocks(data [][]byte, sync bool) ([]packRef, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPacksClosed
	}
	if p.readOnly {
		return nil, errors.New("write packs: database is read-only")
	}
	if err := p.initLocked(); err != nil {
		return nil, err
	}
	refs := make([]packRef, len(data))
	var (
		iov   [][]byte // pending segments, contiguous from start
		start = p.end  // file offset of iov[0]
		pos   = p.end  // file offset after the pending segments
		fill  = 0      // bytes of stage in use by pending segments
	)
	flush := func() error {
		if len(iov) == 0 {
			return nil
		}
		if err := p.writeLocked(iov, start); err != nil {
			return err
		}
		iov, start, fill = iov[:0], pos, 0
		return nil
	}
	for i, d := range data {
		span := alignUp(int64(len(d)))
		if pos > 0 && pos+span > packRotate {
			if err := flush(); err != nil {
				return nil, err
			}
			if err := p.rotateLocked(); err != nil {
				return nil, err
			}
			start, pos = 0, 0
		}
		if err := p.openWriterLocked(); err != nil {
			return nil, err
		}
		refs[i] = packRef{id: p.active, off: pos, n: int64(len(d))}
		if aligned(d) {
			if len(iov) >= packMaxIov {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			iov = append(iov, d)
			pos += span
			continue
		}
		// Copy through the staging buffer, padding with zeros.
		if p.stage == nil {
			p.stage = alignedBuf(packStage)
		}
		for rest := d; len(rest) > 0; {
			if fill == len(p.stage) || len(iov) >= packMaxIov {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			n := copy(p.stage[fill:], rest)
			rest = rest[n:]
			seg := int64(n)
			if len(rest) == 0 {
				seg = alignUp(int64(n))
				clear(p.stage[fill+n : fill+int(seg)])
			}
			iov = append(iov, p.stage[fill:fill+int(seg)])
			fill += int(seg)
			pos += seg
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if sync && p.w != nil {
		if err := fdatasync(p.w); err != nil {
			return nil, fmt.Errorf("sync pack %d: %w", p.active, err)
		}
	}
	p.end = pos
	return refs, nil
}

// advance drops the first n bytes of iov.
func advance(iov [][]byte, n int) [][]byte {
	for n > 0 {
		if n >= len(iov[0]) {
			n -= len(iov[0])
			iov = iov[1:]
		} else {
			iov[0] = iov[0][n:]
			n = 0
		}
	}
	return iov
}

// writeLocked writes the segments at off in the active pack with one
// pwritev at a time, retrying short writes. If an O_DIRECT write is refused
// with EINVAL (a filesystem that accepts the flag at open but not the I/O),
// the pack is reopened for buffered writes and the write retried.
func (p *packs) writeLocked(iov [][]byte, off int64) error {
	iov = append([][]byte(nil), iov...)
	for len(iov) > 0 {
		n, err := pwritevFn(p.w, iov, off)
		if err != nil {
			if p.direct && isEINVAL(err) {
				p.w.Close()
				p.w, p.direct = nil, false
				p.noDirect = true
				if err := p.openWriterLocked(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("write pack %d at %d: %w", p.active, off, err)
		}
		if n == 0 {
			return fmt.Errorf("write pack %d at %d: %w", p.active, off, io.ErrShortWrite)
		}
		off += int64(n)
		iov = advance(iov, n)
	}
	return nil
}

// file returns the read handle of pack id, opening it if needed (read-write
// unless the database is read-only, so that holes can be punched).
func (p *packs) file(id uint32) (*os.File, error) {
	p.rmu.RLock()
	f := p.files[id]
	p.rmu.RUnlock()
	if f != nil {
		return f, nil
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if f := p.files[id]; f != nil {
		return f, nil
	}
	flag := os.O_RDWR
	if p.readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(filepath.Join(p.dir, packName(id)), flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open pack: %w", err)
	}
	p.files[id] = f
	return f, nil
}

// errPackShort reports a pack that ends before a block it should hold.
var errPackShort = errors.New("pack file ends inside the block")

// read reads the block at r into buf (len(buf) == r.n).
func (p *packs) read(r packRef, buf []byte) error {
	f, err := p.file(r.id)
	if err != nil {
		return err
	}
	_, err = f.ReadAt(buf, r.off)
	if errors.Is(err, io.EOF) {
		return errPackShort
	}
	return err
}

// punch frees the space of the block at r. It is best effort: where the
// filesystem cannot punch holes the space is reclaimed only when the whole
// pack is removed.
func (p *packs) punch(r packRef) error {
	if p.readOnly {
		return nil
	}
	f, err := p.file(r.id)
	if err != nil {
		return err
	}
	return punchHole(f, r.off, r.span())
}

// trim reclaims the space of packs below protect, which are never appended
// to again: a pack that holds no block (not in live) is removed, and one whose
// file extends past the end of its last block (live[id]) is truncated there,
// dropping a tail that a crash or a failed write left unindexed. It returns
// the first error and goes on with the other packs.
func (p *packs) trim(live map[uint32]int64, protect uint32) error {
	ids, err := p.list()
	if err != nil {
		return err
	}
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, id := range ids {
		if id >= protect {
			continue
		}
		path := filepath.Join(p.dir, packName(id))
		end, ok := live[id]
		if ok {
			if fi, err := os.Stat(path); err == nil && fi.Size() > end {
				if err := os.Truncate(path, end); err != nil {
					note(fmt.Errorf("trim pack: %w", err))
				}
			}
			continue
		}
		p.rmu.Lock()
		if f := p.files[id]; f != nil {
			f.Close()
			delete(p.files, id)
		}
		p.rmu.Unlock()
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			note(fmt.Errorf("remove pack: %w", err))
		}
	}
	return first
}

// close syncs and closes the active pack and every read handle.
func (p *packs) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if p.w != nil {
		errs = append(errs, fdatasync(p.w), p.w.Close())
		p.w = nil
	}
	p.rmu.Lock()
	for id, f := range p.files {
		errs = append(errs, f.Close())
		delete(p.files, id)
	}
	p.rmu.Unlock()
	return errors.Join(errs...)
}

// Close releases the block store's pack files (see Blockstore.Close). It
// does not close the database.
func (s *Store) Close() error { return s.bs.Close() }
