//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// randBytes returns n incompressible, non-repeating bytes (so no block
// deduplicates) from seed.
func randBytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// mountTmpfs mounts a tmpfs of size MiB on a new directory and unmounts it
// when the test ends (after every cleanup registered later, such as a
// daemon's). It skips outside CI unless run as root on Linux.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test needs root to mount a tmpfs")
		}
		t.Skip("needs root to mount a small tmpfs (runs in CI, where CI=true and root)")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
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

func remountTmpfs(t *testing.T, mnt string, size int) {
	t.Helper()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT, fmt.Sprintf("size=%dm", size)); err != nil {
		t.Fatalf("remount %s with size %d MiB: %v", mnt, size, err)
	}
}

func freeMiB(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Frsize >> 20
}

// wantNoSpace checks that a command failed cleanly for lack of space: exit
// status 1 (a crash is a signal or exit 2 with a goroutine dump), an error
// naming the data directory.
func wantNoSpace(t *testing.T, what string, r result, dir string) {
	t.Helper()
	se := string(r.stderr)
	if r.code != 1 || strings.Contains(se, "goroutine ") || strings.Contains(se, "SIGBUS") {
		t.Fatalf("%s on a full disk: exit %d, want 1 (a clean error)\nstderr: %.3000s", what, r.code, se)
	}
	if !strings.Contains(se, "out of disk space") || !strings.Contains(se, dir) {
		t.Fatalf("%s on a full disk: error does not say out of disk space in %s:\n%s", what, dir, se)
	}
}

// fillUp writes path until the filesystem is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := randBytes(10, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	t.Logf("disk filled: %d MiB free", freeMiB(t, filepath.Dir(path)))
}

// fillLeaving writes path until the filesystem has only leaveMiB MiB free.
func fillLeaving(t *testing.T, path string, leaveMiB int64) {
	t.Helper()
	n := freeMiB(t, filepath.Dir(path)) - leaveMiB
	if n <= 0 {
		t.Fatalf("only %d MiB free, cannot leave %d", freeMiB(t, filepath.Dir(path)), leaveMiB)
	}
	if err := os.WriteFile(path, randBytes(12, int(n)<<20), 0o600); err != nil {
		t.Fatalf("fill %s: %v", path, err)
	}
	t.Logf("disk filled: %d MiB free", freeMiB(t, filepath.Dir(path)))
}

func appendEntry(t *testing.T, dir, e string) uint64 {
	t.Helper()
	var res struct{ Index uint64 }
	out := ok(t, dir, []byte(e), "log", "append", "--json", "-")
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("log append: %v\n%s", err, out)
	}
	return res.Index
}

func addBytes(t *testing.T, dir string, b []byte) string {
	t.Helper()
	return strings.Fields(string(ok(t, dir, b, "add", "-")))[0]
}

// checkAcknowledged checks that every acknowledged file reads back and
// that the log holds exactly the acknowledged entries, in order: from the
// database directly, or from the daemon at base when base is set.
func checkAcknowledged(t *testing.T, dir, base string, files map[string][]byte, entries []string) {
	t.Helper()
	for c, want := range files {
		if got := ok(t, dir, nil, "cat", c); !bytes.Equal(got, want) {
			t.Fatalf("cat %s: %d bytes, want the %d acknowledged", c, len(got), len(want))
		}
	}
	var got []string
	if base == "" {
		var es []struct{ Entry []byte }
		out := ok(t, dir, nil, "log", "entries", "--json")
		if err := json.Unmarshal(out, &es); err != nil {
			t.Fatalf("log entries: %v\n%s", err, out)
		}
		for _, e := range es {
			got = append(got, string(e.Entry))
		}
	} else {
		cp := httpGet(t, base+"/log/checkpoint")
		lines := strings.Split(string(cp), "\n")
		if len(lines) < 2 || lines[1] != fmt.Sprint(len(entries)) {
			t.Fatalf("daemon's checkpoint: want size %d\n%s", len(entries), cp)
		}
		bundle := httpGet(t, fmt.Sprintf("%s/log/tile/entries/000.p/%d", base, len(entries)))
		for len(bundle) >= 2 {
			n := int(bundle[0])<<8 | int(bundle[1])
			if len(bundle) < 2+n {
				t.Fatalf("daemon's entry bundle is truncated")
			}
			got = append(got, string(bundle[2:2+n]))
			bundle = bundle[2+n:]
		}
	}
	if strings.Join(got, "|") != strings.Join(entries, "|") {
		t.Fatalf("log entries = %q, want the acknowledged %q", got, entries)
	}
}

func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}

// serveUntil starts a daemon on dir and returns its URL and a function
// that stops it, failing the test unless it exits 0.
func serveUntil(t *testing.T, dir string) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, "--dir", dir, "serve", "--listen", "127.0.0.1:0", "--no-follow")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon exited with %v after SIGINT\nstderr: %.3000s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("daemon did not stop within 15s of SIGINT")
		}
	}
	t.Cleanup(stop)
	addrFile := filepath.Join(dir, "daemon.addr")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(addrFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			u := strings.TrimSpace(string(b))
			if resp, err := http.Get(u + "/healthz"); err == nil {
				resp.Body.Close()
				return u, stop
			}
		}
		if cmd.ProcessState != nil {
			break
		}
	}
	stop()
	t.Fatalf("daemon did not start\nstderr: %s", stderr.String())
	return "", nil
}

// A full disk is an error naming the data directory (exit 1, HTTP 507),
// never a crash: filling a small tmpfs with adds and log appends, directly
// and through a daemon, every refused write fails cleanly, reads keep
// working (the store opens read-only on the full disk), nothing
// acknowledged is lost, and writes work again once space is freed, also in
// the daemon that was running while the disk was full (issue 12).
func TestFullDiskCLI(t *testing.T) {
	mnt := mountTmpfs(t, 160)
	dir := filepath.Join(mnt, "node")
	ok(t, dir, nil, "init", "--name", "full-node")

	files := map[string][]byte{}
	var entries []string
	small := randBytes(1, 1<<20)
	files[addBytes(t, dir, small)] = small
	entries = append(entries, "entry 0")
	appendEntry(t, dir, entries[0])

	// Directly: an add bigger than the disk, refused once the disk is down
	// to the reserve; then another process fills the disk to the last
	// byte, and every write is refused.
	wantNoSpace(t, "add of 200 MiB", run(t, dir, randBytes(2, 200<<20), "add", "-"), dir)
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)
	wantNoSpace(t, "log append", run(t, dir, []byte("refused entry"), "log", "append", "-"), dir)
	wantNoSpace(t, "add", run(t, dir, randBytes(9, 1<<20), "add", "-"), dir)
	wantNoSpace(t, "block put", run(t, dir, randBytes(3, 1<<10), "block", "put", "-"), dir)
	t.Logf("free after the direct fill: %d MiB", freeMiB(t, mnt))
	// Reads work on the full disk (the store opens read-only).
	checkAcknowledged(t, dir, "", files, entries)

	// Space freed: writes work again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	remountTmpfs(t, mnt, 256)
	b := randBytes(4, 3<<20)
	files[addBytes(t, dir, b)] = b
	entries = append(entries, "entry 1")
	if i := appendEntry(t, dir, entries[1]); i != 1 {
		t.Fatalf("append after freeing space: index %d, want 1", i)
	}

	// Through a daemon that started with space: a filler file (another
	// process) takes the disk down below the node's reserve.
	base, stop := serveUntil(t, dir)
	c := randBytes(5, 1<<20)
	files[addBytes(t, dir, c)] = c
	entries = append(entries, "entry 2")
	appendEntry(t, dir, entries[2])
	// The daemon's own add fills the disk down to the reserve (the node
	// keeps about 43 MiB free) and is refused; a log append then either
	// fits in what is left above the reserve or is refused, never a crash.
	fill := freeMiB(t, mnt) - 120
	if err := os.WriteFile(filler, randBytes(6, int(fill)<<20), 0o600); err != nil {
		t.Fatalf("write filler: %v", err)
	}
	wantNoSpace(t, "add through the daemon", run(t, dir, randBytes(7, 100<<20), "add", "-"), dir)
	if r := run(t, dir, []byte("entry 3"), "log", "append", "--json", "-"); r.code == 0 {
		entries = append(entries, "entry 3")
	} else {
		wantNoSpace(t, "log append through the daemon after a refused add", r, dir)
	}
	// Then another process takes the disk down to 32 MiB, below the
	// node's reserve (about 43 MiB): every write is refused, while badger's
	// background flushes and compactions still find the space they need. (A
	// process that takes the last byte while badger has background work
	// pending can still crash the daemon with SIGBUS inside badger: badger
	// writes its tables through sparse mapped files. DESIGN.md says to keep
	// the data dir on a filesystem of its own.)
	filler2 := filepath.Join(mnt, "filler2")
	fillLeaving(t, filler2, 32)
	wantNoSpace(t, "log append through the daemon", run(t, dir, []byte("refused entry 2"), "log", "append", "-"), dir)
	wantNoSpace(t, "add through the daemon", run(t, dir, randBytes(11, 1<<10), "add", "-"), dir)
	// The JSON API answers 507.
	tok, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/log/append", strings.NewReader("refused entry 3"))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("daemon after refused writes: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), dir) {
		t.Fatalf("POST /api/v1/log/append on a full disk: %d %s, want 507 naming %s", resp.StatusCode, body, dir)
	}
	// The daemon keeps serving reads.
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after refused writes: %v %v", resp, err)
	}
	checkAcknowledged(t, dir, base, files, entries)

	// The fillers removed, the same daemon takes writes again.
	for _, f := range []string{filler, filler2} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	d := randBytes(8, 2<<20)
	files[addBytes(t, dir, d)] = d
	entries = append(entries, "entry 4")
	if i := appendEntry(t, dir, "entry 4"); i != uint64(len(entries)-1) {
		t.Fatalf("append after removing the fillers: index %d, want %d", i, len(entries)-1)
	}
	checkAcknowledged(t, dir, base, files, entries)

	// Everything acknowledged is there after the daemon stops and the
	// store is reopened.
	stop()
	checkAcknowledged(t, dir, "", files, entries)
}
