package store_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"golang.org/x/sys/unix"
)

// TestPackTmpfsFallback adds a file to a store on tmpfs, which refuses
// O_DIRECT on older kernels (EINVAL at open) and accepts it on newer ones:
// either way the add must work. The fallback itself is forced in
// TestPackDirectRefused.
func TestPackTmpfsFallback(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "store-pack-test")
	if err != nil {
		t.Skipf("/dev/shm not writable: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := store.New(db, store.Options{})
	defer s.Close()
	ctx := context.Background()
	data := stRand(3, 3<<20)
	c, err := s.Add(ctx, bytes.NewReader(data), store.AddOptions{})
	if err != nil {
		t.Fatalf("add on tmpfs: %v", err)
	}
	if len(packFiles(t, dir)) != 1 {
		t.Fatalf("packs on tmpfs: %v", packFiles(t, dir))
	}
	f, err := s.Cat(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(f); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("cat on tmpfs: %v", err)
	}
}
