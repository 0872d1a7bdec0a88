//go:build linux

package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// errNoDirect reports a filesystem that does not support O_DIRECT.
var errNoDirect = errors.New("O_DIRECT not supported")

// openDirect opens path for O_DIRECT appends, creating it. It returns an
// error matching errNoDirect where the filesystem refuses the flag (tmpfs
// answers EINVAL).
func openDirect(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC|unix.O_DIRECT, 0o600)
	if err == unix.EINVAL {
		return nil, fmt.Errorf("open pack %s: %w: %w", path, errNoDirect, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open pack: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	return os.NewFile(uintptr(fd), path), nil
}

func isEINVAL(err error) bool { return errors.Is(err, unix.EINVAL) }

// pwritev writes the segments at off with one system call.
func pwritev(f *os.File, iov [][]byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		werr error
	)
	cerr := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Pwritev(int(fd), iov, off)
			if werr != unix.EINTR {
				return true
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	if werr != nil {
		return n, &os.PathError{Op: "pwritev", Path: f.Name(), Err: werr}
	}
	return n, nil
}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// punchHole frees [off, off+n) of f, keeping its size. Filesystems without
// hole punching (EOPNOTSUPP) are not an error: the space is reclaimed when
// the pack is removed.
func punchHole(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	if err := rc.Control(func(fd uintptr) {
		perr = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}); err != nil {
		return err
	}
	if perr == unix.EOPNOTSUPP || perr == unix.ENOSYS {
		return nil
	}
	if perr != nil {
		return &os.PathError{Op: "punch hole", Path: f.Name(), Err: perr}
	}
	return nil
}
