//go:build linux

package kv

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// released holds the mappings ("start-end path") already released.
var released sync.Map

// ReleaseLogPages keeps a long write's footprint flat. Badger writes its value
// log through a shared file mapping and keeps every value log file mapped,
// so without this every byte written stays in the process's resident set,
// and each value log rotation fsyncs the whole finished file in badger's
// single writer goroutine. ReleaseLogPages, called by a writer after each
// large batch:
//
//   - starts asynchronous writeback of the value log file being written
//     (sync_file_range SYNC_FILE_RANGE_WRITE), so the rotation's fsync finds
//     the pages already clean or in flight;
//   - drops this process's page table entries for every older value log
//     file (madvise MADV_DONTNEED). Those files are never written again; the
//     data stays in the page cache and on disk and later reads fault it
//     back in.
//   - drops them, at every call, for the tables (*.sst, read-only
//     mappings: compactions read each table whole, so a busy node would
//     otherwise keep every table resident) and for the memtable logs
//     (*.mem) other than the newest (written no more, waiting to be
//     flushed). Reads fault the pages they need back from the page cache.
//
// It never touches the newest value log file's nor the newest memtable
// log's mapping, nor files that appear while it runs. It is a no-op for in-memory databases and on
// systems other than Linux, and best-effort: errors are returned for
// logging only, the database is unaffected.
func ReleaseLogPages(db *badger.DB) error {
	// Each finished file's mapping is released once; pages that reads bring
	// back stay (they are the read cache).
	opts := db.Opts()
	if opts.InMemory || opts.ValueDir == "" {
		return nil
	}
	dir := filepath.Clean(opts.ValueDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	maxFid, cur := -1, ""
	old := map[string]bool{}
	// trim: mappings released at every call (tables, older memtable logs).
	trim := map[string]bool{}
	maxMem, curMem := -1, ""
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".sst") {
			trim[filepath.Join(dir, name)] = true
			continue
		}
		if strings.HasSuffix(name, ".mem") {
			if fid, err := strconv.Atoi(strings.TrimSuffix(name, ".mem")); err == nil {
				p := filepath.Join(dir, name)
				trim[p] = true
				if fid > maxMem {
					maxMem, curMem = fid, p
				}
			}
			continue
		}
		if !strings.HasSuffix(name, ".vlog") {
			continue
		}
		fid, err := strconv.Atoi(strings.TrimSuffix(name, ".vlog"))
		if err != nil {
			continue
		}
		p := filepath.Join(dir, name)
		old[p] = true
		if fid > maxFid {
			maxFid, cur = fid, p
		}
	}
	delete(trim, curMem)
	if cur != "" {
		delete(old, cur)
	}

	if cur != "" {
		if f, err := os.Open(cur); err == nil {
			_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
			f.Close()
		}
	}
	if len(old) == 0 && len(trim) == 0 {
		return nil
	}

	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || (!old[f[5]] && !trim[f[5]]) {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		key := f[0] + " " + f[5]
		if _, done := released.Load(key); done && !trim[f[5]] {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); e != 0 {
			return e
		}
		if !trim[f[5]] {
			released.Store(key, struct{}{})
		}
	}
	return sc.Err()
}
