package kv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Key-space prefixes. See the package documentation.
var (
	PrefixBlocks  = []byte("b/")
	PrefixPins    = []byte("p/")
	PrefixLog     = []byte("l/")
	PrefixWitness = []byte("w/")
	PrefixAttest  = []byte("a/")
	PrefixAudit   = []byte("x/")
	PrefixClosure = []byte("c/")
	PrefixPending = []byte("q/")
	PrefixNonces  = []byte("n/")
)

// ErrLocked is returned (wrapped in a *LockedError) when another process holds
// the database.
var ErrLocked = errors.New("data directory is in use by another process")

// LockedError names the directory that is locked.
type LockedError struct {
	Dir string
	Err error
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s: %v (is an agentix-store daemon running on it?)", e.Dir, ErrLocked)
}

func (e *LockedError) Unwrap() []error { return []error{ErrLocked, e.Err} }

// Options tune the database. The zero value is the node's default.
type Options struct {
	// InMemory opens a database that is never written to disk (tests only).
	InMemory bool
	// ReadOnly opens the database without taking the write lock.
	ReadOnly bool
	// Logger receives badger's log lines; nil silences them.
	Logger badger.Logger
}

// Open opens (creating if needed) the badger database in dir/badger.
//
// The options keep memory bounded whatever the amount of data: small
// memtables (8 MiB, two of them: each is an arena on the heap plus its
// mapped log), values of 128 bytes or more in the value log, modest caches
// (8 MiB of blocks, 4 MiB of indexes). (Large
// blocks do not go through badger at all: package store keeps them in pack
// files, see PacksDir.) Value log files are
// 16 MiB: badger keeps the file being written mapped and resident until it
// rotates (ReleaseLogPages drops the finished ones, and the tables' pages),
// so this size bounds the
// value log's share of a long write's RSS; the price is more files (about
// 64 per GiB stored, each an open descriptor and a mapping). These sizes
// keep the daemon under 256 MiB of RSS with 256 concurrent publishers
// (`make loadtest`); the free-space reserve (Reserve) follows from them.
func Open(dir string, o Options) (*badger.DB, error) {
	path := filepath.Join(dir, "badger")
	if !o.InMemory {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	if !o.InMemory {
		if err := trimLogHoles(path); err != nil {
			return nil, err
		}
	}
	if !o.InMemory && !o.ReadOnly {
		if err := removeEmptyLogs(path); err != nil {
			return nil, err
		}
	}
	bo := badger.DefaultOptions(path).
		WithLogger(o.Logger).
		WithSyncWrites(false).
		WithInMemory(o.InMemory).
		WithReadOnly(o.ReadOnly).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// Values of 128 bytes or more (log entries, tiles, records,
		// mid-size blocks) go to the value log, so compactions move
		// only keys and pointers: with 1 KiB, 512-byte log entries were
		// rewritten by every compaction, a fifth of the daemon's CPU under
		// 256 concurrent appenders.
		WithValueThreshold(128).
		WithValueLogFileSize(16 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithDetectConflicts(false)
	if o.InMemory {
		// No value log in memory: every value must fit under the
		// threshold (badger's maximum is 1 MiB).
		bo.Dir, bo.ValueDir = "", ""
		bo = bo.WithValueThreshold(1 << 20)
	}
	// Below the reserve, badger cannot be opened for writing without
	// risking a SIGBUS (opening writes new log files and flushes the logs
	// left behind): open it read-only, so that reads keep working.
	var full *NoSpaceError
	if !o.InMemory && !o.ReadOnly {
		if free, ok := freeBytes(dir); ok && free < Reserve(bo) {
			full = &NoSpaceError{Dir: dir, Free: free, Need: Reserve(bo), ReadOnly: true}
			bo = bo.WithReadOnly(true)
		}
	}
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") ||
			strings.Contains(err.Error(), "resource temporarily unavailable") {
			return nil, &LockedError{Dir: dir, Err: err}
		}
		if full != nil {
			// Typically badger.ErrTruncateNeeded: a memtable log left
			// by a process that did not close the database must be
			// replayed, which writes.
			full.ReadOnly = false
			full.Err = fmt.Errorf("cannot open %s for writing, nor read-only: %w", path, err)
			return nil, full
		}
		return nil, fmt.Errorf("open database in %s: %w", path, err)
	}
	if !o.InMemory {
		guards.Store(db, &guard{dir: dir, reserve: Reserve(bo), readOnly: full != nil})
	}
	return db, nil
}

// ReadOnlyForSpace reports whether Open opened db read-only because its
// filesystem was below the reserve; every Claim on it fails.
func ReadOnlyForSpace(db *badger.DB) bool {
	return !db.Opts().InMemory && guardOf(db).readOnly
}

// Close closes db. When the filesystem no longer has room for badger to
// flush its memtables into tables (about the size of their logs) (which it does on close, through a
// mapping, so that a full disk would kill the process), Close syncs the
// memtable log instead and leaves the database to be replayed by the next
// Open, returning a *NoSpaceError: nothing synced is lost.
func Close(db *badger.DB) error {
	defer guards.Delete(db)
	o := db.Opts()
	if !o.InMemory && !o.ReadOnly {
		dir := guardOf(db).dir
		need := memLogBytes(o.Dir) + 1<<20
		if free, ok := freeBytes(dir); ok && free < need {
			if err := db.Sync(); err != nil {
				return NoSpace(db, fmt.Errorf("sync database: %w", err))
			}
			return &NoSpaceError{Dir: dir, Free: free, Need: need,
				Err: errors.New("database left open, to be replayed from its synced log when next opened")}
		}
	}
	return db.Close()
}

// PacksDir returns the directory of the block store's pack files for a
// database opened by Open: <data dir>/packs, next to <data dir>/badger. It
// returns "" for an in-memory database, which keeps every block inline.
func PacksDir(db *badger.DB) string {
	o := db.Opts()
	if o.InMemory || o.Dir == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(filepath.Clean(o.Dir)), "packs")
}

// removeEmptyLogs deletes zero-length value log (*.vlog) and memtable WAL
// (*.mem) files in dir. Badger creates such a file and then extends it with
// ftruncate; when the extension fails (disk full, file size limit) the empty
// file stays behind, and badger refuses to open a directory holding one
// ("Create a new file"). A zero-length log holds no entry (a log that was
// ever written starts with a header), so removing it loses nothing and keeps
// the store openable after running out of disk.
func removeEmptyLogs(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read database directory: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || (!strings.HasSuffix(name, ".vlog") && !strings.HasSuffix(name, ".mem")) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("remove empty log file: %w", err)
		}
	}
	return nil
}
