//go:build linux

package kv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// freeBytes returns the space available to this (unprivileged) process on
// dir's filesystem.
func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	unit := st.Frsize // Bavail counts fragments
	if unit <= 0 {
		unit = st.Bsize
	}
	return int64(st.Bavail) * unit, true
}

// trimLogHoles cuts the trailing holes off badger's memtable logs (*.mem)
// and value log files (*.vlog) in dir, the database directory, unless
// another process holds the database. Badger creates these files sparse, at
// twice their nominal size, and maps them; replaying one at open reads up
// to the end of its entries, and on tmpfs even reading a page of a hole
// allocates it, so on a full tmpfs the replay of a log left by a process
// that did not close the database dies of SIGBUS. A trailing hole holds no
// entry (badger writes each file from its start), so cutting it changes
// nothing badger reads; badger truncates the files to their last entry on
// open anyway.
func trimLogHoles(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open database directory: %w", err)
	}
	defer d.Close()
	// Badger's own lock: the directory itself, flocked. Held, it means a
	// live process maps these files; leave them to it (Open then reports
	// the lock).
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)
	ents, err := d.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("read database directory: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || (!strings.HasSuffix(name, ".vlog") && !strings.HasSuffix(name, ".mem")) {
			continue
		}
		if err := trimHole(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func trimHole(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("trim %s: %w", path, err)
	}
	defer f.Close()
	fd := int(f.Fd())
	size, err := unix.Seek(fd, 0, unix.SEEK_END)
	if err != nil || size == 0 {
		return nil
	}
	// The last hole: the data after the last data extent. Walk the data
	// extents (interior holes are left alone: badger never makes them,
	// and what follows them is data).
	end := int64(0)
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data from off on
		}
		if err != nil {
			return nil // SEEK_DATA unsupported: leave the file
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil
		}
		end, off = hole, hole
	}
	if end >= size {
		return nil
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("trim %s to %d bytes: %w", path, end, err)
	}
	return nil
}

// memLogBytes returns the space the memtable logs (*.mem) in dir occupy:
// about the size of the tables that flushing them writes.
func memLogBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}
