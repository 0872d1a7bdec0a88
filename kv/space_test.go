//go:build linux

package kv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// A claim that would leave less than the reserve free is refused with a
// *NoSpaceError naming the data directory; released claims stop counting.
func TestClaimRefusedBelowReserve(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db)
	free, ok := freeBytes(dir)
	if !ok {
		t.Fatal("statfs failed")
	}
	g := guardOf(db)
	if g.dir != dir {
		t.Fatalf("guard names %q, want the data dir %q", g.dir, dir)
	}
	g.reserve = free - 8<<20 // as if the disk had 8 MiB above the reserve
	rel, err := Claim(db, 4<<20)
	if err != nil {
		t.Fatalf("claim of 4 MiB with 8 above the reserve: %v", err)
	}
	for _, n := range []int64{6 << 20, 64 << 20} {
		_, err := Claim(db, n)
		var ne *NoSpaceError
		if !errors.Is(err, ErrNoSpace) || !errors.As(err, &ne) || ne.Dir != dir || !strings.Contains(err.Error(), dir) {
			t.Fatalf("claim of %d MiB with 4 in flight: %v, want a *NoSpaceError naming %s", n>>20, err, dir)
		}
		if ne.ReadOnly || ne.Need < g.reserve+n {
			t.Fatalf("claim of %d MiB: %+v", n>>20, ne)
		}
	}
	rel()
	rel() // idempotent
	rel2, err := Claim(db, 6<<20)
	if err != nil {
		t.Fatalf("claim after the first was released: %v", err)
	}
	rel2()
	if p := g.pending.Load(); p != 0 {
		t.Fatalf("%d bytes still claimed after every release", p)
	}
}

func TestNoSpaceWrapsENOSPC(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("write pack 1 at 0: %w", unix.ENOSPC), true},
		{fmt.Errorf("write pack 1 at 0: %w", unix.EFBIG), true},
		{errors.New("while creating table: no space left on device"), true}, // badger's flattened text
		{errors.New("some other failure"), false},
	} {
		got := NoSpace(db, tc.err)
		var ne *NoSpaceError
		if errors.As(got, &ne) != tc.want || errors.Is(got, ErrNoSpace) != tc.want {
			t.Errorf("NoSpace(%v) = %v, want no-space %v", tc.err, got, tc.want)
		}
		if tc.want && (ne.Dir != Dir(db) || !errors.Is(got, tc.err)) {
			t.Errorf("NoSpace(%v) = %+v: does not name the dir or lost the cause", tc.err, ne)
		}
	}
}

// mountTmpfs mounts a tmpfs of size MiB in a temporary directory; it skips
// outside CI unless root.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test needs root to mount a tmpfs")
		}
		t.Skip("needs root to mount a small tmpfs (runs in CI, where CI=true and root)")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%dm", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 4 << 10, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

// On a full disk the database opens read-only: reads work, every claim is
// refused naming the directory, Close does not write; with space again it
// opens for writing.
func TestOpenFullDiskReadOnly(t *testing.T) {
	mnt := mountTmpfs(t, 128)
	dir := filepath.Join(mnt, "node")
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(db *badger.DB, k, v string) error {
		rel, err := Claim(db, int64(len(k)+len(v)))
		if err != nil {
			return err
		}
		defer rel()
		return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(k), []byte(v)) })
	}
	get := func(db *badger.DB, k string) (v []byte, err error) {
		err = db.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte(k))
			if err != nil {
				return err
			}
			v, err = it.ValueCopy(nil)
			return err
		})
		return v, err
	}
	big := strings.Repeat("v", 4<<10) // in the value log
	if err := put(db, "small", "s"); err != nil {
		t.Fatal(err)
	}
	if err := put(db, "big", big); err != nil {
		t.Fatal(err)
	}
	if err := Close(db); err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	if !ReadOnlyForSpace(db) {
		t.Fatal("opened on a full disk, but not read-only")
	}
	if v, err := get(db, "small"); err != nil || string(v) != "s" {
		t.Fatalf("read small on a full disk: %q %v", v, err)
	}
	if v, err := get(db, "big"); err != nil || string(v) != big {
		t.Fatalf("read big on a full disk: %d bytes, %v", len(v), err)
	}
	err = put(db, "refused", "x")
	var ne *NoSpaceError
	if !errors.As(err, &ne) || !ne.ReadOnly || ne.Dir != dir || !strings.Contains(err.Error(), dir) {
		t.Fatalf("write on a full disk: %v, want a read-only *NoSpaceError naming %s", err, dir)
	}
	if err := Close(db); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db)
	if ReadOnlyForSpace(db) {
		t.Fatal("read-only with the disk freed")
	}
	if err := put(db, "after", "a"); err != nil {
		t.Fatalf("write with the disk freed: %v", err)
	}
	if v, err := get(db, "big"); err != nil || string(v) != big {
		t.Fatalf("read big after reopening: %d bytes, %v", len(v), err)
	}
}

const helperEnv = "KV_TEST_FULL_DISK_HELPER"

// TestHelperProcessFullDisk is not a test: TestCloseAndReopenFullDisk runs
// the test binary again with only this function selected and helperEnv set
// to "MODE DIR". It prints what happened and exits 0, or 3 when an
// expectation failed; a SIGBUS kills it with another status.
func TestHelperProcessFullDisk(t *testing.T) {
	mode, dir, ok := strings.Cut(os.Getenv(helperEnv), " ")
	if !ok {
		t.Skip("helper process for TestCloseAndReopenFullDisk")
	}
	fail := func(format string, args ...any) {
		fmt.Printf("FAIL: "+format+"\n", args...)
		os.Exit(3)
	}
	switch mode {
	case "write-fill-close":
		// Write (the memtable is not empty), let another process fill
		// the disk, close: badger's close would flush the memtable
		// into a table through a mapping.
		db, err := Open(dir, Options{})
		if err != nil {
			fail("open: %v", err)
		}
		if err := db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte("acknowledged"), []byte(strings.Repeat("a", 300)))
		}); err != nil {
			fail("write: %v", err)
		}
		fillUp(t, filepath.Join(filepath.Dir(dir), "filler"))
		err = Close(db)
		if !errors.Is(err, ErrNoSpace) {
			fail("close on a full disk: %v, want ErrNoSpace", err)
		}
		fmt.Printf("CLOSE: %v\n", err)
	case "open-full":
		_, err := Open(dir, Options{})
		var ne *NoSpaceError
		if !errors.As(err, &ne) || ne.Dir != dir {
			fail("open on a full disk with a log to replay: %v, want a *NoSpaceError naming %s", err, dir)
		}
		fmt.Printf("OPEN: %v\n", err)
	default:
		fail("unknown mode %q", mode)
	}
	os.Exit(0)
}

// Closing with writes in the memtable on a full disk neither crashes nor
// loses them: Close syncs the log and leaves it to be replayed; opening
// again while the disk is full is a clean *NoSpaceError (the replay needs
// space), and once space is freed the write is there.
func TestCloseAndReopenFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, 128)
	dir := filepath.Join(mnt, "node")
	helper := func(mode string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessFullDisk$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+mode+" "+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%.3000s", mode, err, out)
		}
		t.Logf("%s: %s", mode, bytes.TrimSpace(out))
	}
	helper("write-fill-close")
	helper("open-full")
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db)
	err = db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("acknowledged"))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if string(v) != strings.Repeat("a", 300) {
				return fmt.Errorf("value %q", v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("the write synced before the full-disk close: %v", err)
	}
}
