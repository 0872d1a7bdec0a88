package kv

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/dgraph-io/badger/v4"
)

// ErrNoSpace is returned (wrapped in a *NoSpaceError) when the data
// directory's filesystem has too little free space to accept a write.
var ErrNoSpace = errors.New("out of disk space")

// NoSpaceError names the data directory that is out of space.
type NoSpaceError struct {
	Dir string // the data directory
	// Free is the space free on Dir's filesystem when the write was
	// refused, Need what the write needed (the reserve plus the writes in
	// flight); both are -1 when unknown (an ENOSPC from the kernel).
	Free, Need int64
	// ReadOnly reports that the database was opened read-only because the
	// filesystem was below the reserve when it was opened; writes resume
	// when it is reopened with space free.
	ReadOnly bool
	Err      error // the underlying error, if any
}

func (e *NoSpaceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Dir, ErrNoSpace)
	if e.Free >= 0 && e.Need >= 0 {
		fmt.Fprintf(&b, " (%s free, writes need %s)", mib(e.Free), mib(e.Need))
	}
	if e.ReadOnly {
		b.WriteString("; the database was opened read-only: free space, then restart the daemon or rerun the command")
	} else {
		b.WriteString("; free space and retry")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap reports ErrNoSpace and the underlying error.
func (e *NoSpaceError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNoSpace}
	}
	return []error{ErrNoSpace, e.Err}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Reserve is the free space, in bytes, below which a database opened with
// options o accepts no write (see Claim). Badger writes its memtable logs,
// value log and tables through shared file mappings that it creates as
// sparse files: a page it first touches when the filesystem is full is not
// an error it can return but a SIGBUS that kills the process. The reserve
// covers what badger may still write after the last write was admitted,
// without asking: flushing every memtable (NumMemtables, the last one when
// the database is closed) and one compaction of level 0 into the base level
// (NumLevelZeroTables tables of at most a memtable each, plus the base
// level, written before the inputs are deleted), plus 1 MiB for the
// manifest, the discard file and new files' headers.
func Reserve(o badger.Options) int64 {
	return o.MemTableSize*int64(o.NumMemtables+o.NumLevelZeroTables) + o.BaseLevelSize + 1<<20
}

// guard admits writes to one database.
type guard struct {
	dir      string // the data directory, for errors and statfs
	reserve  int64
	readOnly bool // opened read-only for lack of space
	pending  atomic.Int64
}

var guards sync.Map // *badger.DB -> *guard

func guardOf(db *badger.DB) *guard {
	if g, ok := guards.Load(db); ok {
		return g.(*guard)
	}
	o := db.Opts()
	g := &guard{dir: filepath.Dir(filepath.Clean(o.Dir)), reserve: Reserve(o)}
	v, _ := guards.LoadOrStore(db, g)
	return v.(*guard)
}

// Dir returns the data directory of db (the parent of its badger
// directory), "" for an in-memory database.
func Dir(db *badger.DB) string {
	if db.Opts().InMemory {
		return ""
	}
	return guardOf(db).dir
}

// Claim admits a write of about n bytes (data and keys, in badger and in
// pack files) to db: it fails with a *NoSpaceError unless the filesystem of
// the data directory keeps at least the reserve (see Reserve) free after
// this write and every other admitted write still in flight. The caller
// calls release when its write is done (written or failed). Every write
// path of the node claims before it writes; a database opened read-only for
// lack of space refuses every claim.
func Claim(db *badger.DB, n int64) (release func(), err error) {
	o := db.Opts()
	if o.InMemory {
		return func() {}, nil
	}
	g := guardOf(db)
	if g.readOnly {
		return nil, &NoSpaceError{Dir: g.dir, Free: -1, Need: -1, ReadOnly: true}
	}
	if o.ReadOnly {
		return func() {}, nil // badger refuses the write itself
	}
	free, ok := freeBytes(g.dir)
	if !ok {
		return func() {}, nil
	}
	inFlight := g.pending.Add(n)
	if need := g.reserve + inFlight; free < need {
		g.pending.Add(-n)
		return nil, &NoSpaceError{Dir: g.dir, Free: free, Need: need}
	}
	var once sync.Once
	return func() { once.Do(func() { g.pending.Add(-n) }) }, nil
}

// NoSpace returns err as a *NoSpaceError naming db's data directory when it
// reports that the filesystem is full or a file size limit was hit (ENOSPC,
// EFBIG, also when badger has flattened them into text), else err itself.
func NoSpace(db *badger.DB, err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	msg := err.Error()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) ||
		strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EFBIG.Error()) {
		return &NoSpaceError{Dir: Dir(db), Free: -1, Need: -1, Err: err}
	}
	return err
}
