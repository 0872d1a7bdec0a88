//go:build linux

package kv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// mappedKB sums the resident kB (smaps Rss) of this process's mappings of
// files whose name ends in suffix.
func mappedKB(t *testing.T, suffix string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	var total int64
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && strings.HasSuffix(f[5], suffix)
			continue
		}
		if in && len(f) >= 2 && f[0] == "Rss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			total += n
		}
	}
	return total
}

// TestReleaseLogPagesTables: tables that compactions and reads have
// brought into the process's resident set leave it on ReleaseLogPages
// (the daemon calls it every 500 ms), so a busy node's RSS does not grow with
// the tables it has read; the data is still read back intact.
func TestReleaseLogPagesTables(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	// ~48 MiB of small (inline) values: several memtable flushes.
	const n = 480_000
	val := bytes.Repeat([]byte("v"), 64)
	wb := db.NewWriteBatch()
	for i := 0; i < n; i++ {
		if err := wb.Set([]byte(fmt.Sprintf("l/%09d", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func() {
		t.Helper()
		err := db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.DefaultIteratorOptions)
			defer it.Close()
			c := 0
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if !bytes.Equal(v, val) {
					return fmt.Errorf("key %s: value %q", it.Item().Key(), v)
				}
				c++
			}
			if c != n {
				return fmt.Errorf("read %d keys, want %d", c, n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Flush the memtables into tables and read everything through them.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	dir := db.Opts().Dir
	if db, err = Open(strings.TrimSuffix(dir, "/badger"), Options{}); err != nil {
		t.Fatal(err)
	}
	read()
	before := mappedKB(t, ".sst")
	if before < 4<<10 {
		t.Fatalf("only %d kB of tables resident after reading them all: the test does not exercise tables", before)
	}
	if err := ReleaseLogPages(db); err != nil {
		t.Fatal(err)
	}
	after := mappedKB(t, ".sst")
	t.Logf("tables resident: %d kB after reading, %d kB after ReleaseLogPages", before, after)
	if after > before/8 {
		t.Fatalf("ReleaseLogPages left %d kB of %d kB of tables resident", after, before)
	}
	read()
}
