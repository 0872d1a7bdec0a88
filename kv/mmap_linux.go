//go:build linux

package kv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

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
//   - drops this process's page table entries (madvise MADV_DONTNEED) for
//     every older value log file, for the tables (*.sst: compactions read
//     and write tables whole, so a busy node would otherwise keep every
//     table it touched resident) and for the memtable logs (*.mem) other
//     than the newest (written no more, waiting to be flushed). These are
//     shared file mappings: the data stays in the page cache (dirty pages
//     stay dirty) and on disk, and reads fault back in the pages they need
//     (so it is done at every call: the daemon calls it every 500 ms).
//
// Each range is checked, just before madvise, to still map the same file
// (/proc/self/map_files): badger unmaps a table once a compaction has
// replaced it, and the address could be reused.
//
// It never touches the newest value log file's nor the newest memtable
// log's mapping, nor files that appear while it runs. It is a no-op for in-memory databases and on
// systems other than Linux, and best-effort: errors are returned for
// logging only, the database is unaffected.
func ReleaseLogPages(db *badger.DB) error {
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
		// map_files names ranges without maps' zero padding; readable by
		// the process itself, no capability needed.
		if t, err := os.Readlink(fmt.Sprintf("/proc/self/map_files/%x-%x", start, end)); err != nil || t != f[5] {
			continue // unmapped (or remapped) since maps was read
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); e != 0 {
			return e
		}
	}
	return sc.Err()
}
