//go:build !linux

package store

import (
	"errors"
	"os"
)

// errNoDirect reports that O_DIRECT is not available: outside Linux packs
// are always written through the page cache.
var errNoDirect = errors.New("O_DIRECT not supported")

func openDirect(path string) (*os.File, error) { return nil, errNoDirect }

func isEINVAL(err error) bool { return false }

// pwritev writes the segments at off one after another.
func pwritev(f *os.File, iov [][]byte, off int64) (int, error) {
	total := 0
	for _, b := range iov {
		n, err := f.WriteAt(b, off)
		total += n
		off += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func fdatasync(f *os.File) error { return f.Sync() }

// punchHole is not supported outside Linux: the space of deleted blocks is
// reclaimed when their whole pack is removed.
func punchHole(f *os.File, off, n int64) error { return nil }
