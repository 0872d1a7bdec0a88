package closure

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/nar"
	"golang.org/x/sys/unix"
)

// DumpError reports a store path that could not be serialised as a NAR
// in-process: a file that vanished or could not be read, a file type a NAR
// cannot hold (device, socket, FIFO), or a store path outside the store
// directory. Entry is the path inside the store path ("/" is its root).
type DumpError struct {
	StorePath string
	Entry     string
	Err       error
}

func (e *DumpError) Error() string {
	return fmt.Sprintf("dump NAR of %s at %q: %v", e.StorePath, e.Entry, e.Err)
}

func (e *DumpError) Unwrap() error { return e.Err }

// dumpBufSize is the write buffer between go-nix's NAR writer (which writes
// token by token) and the sink, and the read size of file contents.
const dumpBufSize = 256 << 10

var dumpBufs = sync.Pool{New: func() any { b := make([]byte, dumpBufSize); return &b }}

// DumpNAR writes the NAR serialisation of the store path storePath, which
// must lie directly in storeDir, to w, as `nix-store --dump` does: byte for
// byte the same NAR (so its SHA-256 is Nix's narHash).
//
// Nothing is followed: the store path is looked at (fstatat with
// AT_SYMLINK_NOFOLLOW) in the store directory's descriptor, and every node
// below it is opened relative to its parent directory's descriptor, one
// name at a time, with O_NOFOLLOW. A symlink becomes a NAR symlink (its
// target is never read through), and a node swapped for a symlink while the
// dump runs fails the dump instead of leading out of the store path. The
// store is only read. A regular file is executable in the NAR when its
// owner may execute it (Nix's rule); entries are in byte order of their
// names. Errors are *DumpError naming the store path and the entry.
func DumpNAR(w io.Writer, storeDir, storePath string) error {
	if storeDir == "" {
		storeDir = DefaultStoreDir
	}
	if err := checkStorePath(storePath, storeDir, ""); err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: err}
	}
	dirfd, err := unix.Open(storeDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: &fs.PathError{Op: "open", Path: storeDir, Err: err}}
	}
	defer unix.Close(dirfd)

	bp := dumpBufs.Get().(*[]byte)
	defer dumpBufs.Put(bp)
	buf := *bp
	// Half the buffer batches the writer's small token writes, the other
	// half carries file contents.
	bw := bufio.NewWriterSize(w, len(buf)/2)
	nw, err := nar.NewWriter(bw)
	if err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: err}
	}
	d := &dumper{nw: nw, storePath: storePath, buf: buf[len(buf)/2:]}
	if err := d.node(dirfd, path.Base(storePath), "/", unknownType); err != nil {
		// Close the writer's goroutine; its error says nothing more.
		_ = nw.Close()
		return err
	}
	if err := nw.Close(); err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: err}
	}
	if err := bw.Flush(); err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: err}
	}
	return nil
}

type dumper struct {
	nw        *nar.Writer
	storePath string
	buf       []byte
}

func (d *dumper) fail(entry string, err error) error {
	return &DumpError{StorePath: d.storePath, Entry: entry, Err: err}
}

// unknownType is the type argument of node when the caller does not know it.
const unknownType = ^fs.FileMode(0)

// node writes the node name in the directory dirfd as NAR entry entry; typ
// is its type as the directory listing gave it (fs.ModeType bits), or
// unknownType.
func (d *dumper) node(dirfd int, name, entry string, typ fs.FileMode) error {
	if typ == unknownType {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return d.fail(entry, &fs.PathError{Op: "lstat", Path: name, Err: err})
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			typ = fs.ModeSymlink
		case unix.S_IFDIR:
			typ = fs.ModeDir
		case unix.S_IFREG:
			typ = 0
		default:
			typ = fs.ModeIrregular
		}
	}
	switch {
	case typ&fs.ModeSymlink != 0:
		target, err := readlinkat(dirfd, name)
		if err != nil {
			return d.fail(entry, &fs.PathError{Op: "readlink", Path: name, Err: err})
		}
		if err := d.nw.WriteHeader(&nar.Header{Path: entry, Type: nar.TypeSymlink, LinkTarget: target}); err != nil {
			return d.fail(entry, err)
		}
		return nil
	case typ&fs.ModeDir != 0:
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return d.fail(entry, &fs.PathError{Op: "open", Path: name, Err: err})
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		ents, err := f.ReadDir(-1)
		if err != nil {
			return d.fail(entry, err)
		}
		// Nix's order: names compared as bytes.
		slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		if err := d.nw.WriteHeader(&nar.Header{Path: entry, Type: nar.TypeDirectory}); err != nil {
			return d.fail(entry, err)
		}
		for _, e := range ents {
			child := entry + "/" + e.Name()
			if entry == "/" {
				child = "/" + e.Name()
			}
			if err := d.node(fd, e.Name(), child, e.Type()); err != nil {
				return err
			}
		}
		return nil
	case typ.IsRegular():
		return d.regular(dirfd, name, entry)
	default:
		return d.fail(entry, fmt.Errorf("file type %s cannot be in a NAR", typ.Type()))
	}
}

// regular writes the regular file name in dirfd: its size and mode are
// those of what was opened (O_NOFOLLOW), which must still be a regular
// file, and exactly that many bytes are read.
func (d *dumper) regular(dirfd int, name, entry string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return d.fail(entry, &fs.PathError{Op: "open", Path: name, Err: err})
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return d.fail(entry, &fs.PathError{Op: "fstat", Path: name, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return d.fail(entry, fmt.Errorf("not a regular file any more (mode %o)", st.Mode))
	}
	hdr := &nar.Header{Path: entry, Type: nar.TypeRegular, Size: st.Size, Executable: st.Mode&unix.S_IXUSR != 0}
	if err := d.nw.WriteHeader(hdr); err != nil {
		return d.fail(entry, err)
	}
	for left := st.Size; left > 0; {
		b := d.buf
		if int64(len(b)) > left {
			b = b[:left]
		}
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return d.fail(entry, &fs.PathError{Op: "read", Path: name, Err: err})
		}
		if n == 0 {
			return d.fail(entry, fmt.Errorf("file shrank while read: %d bytes missing of %d", left, st.Size))
		}
		if _, err := d.nw.Write(b[:n]); err != nil {
			return d.fail(entry, err)
		}
		left -= int64(n)
	}
	return nil
}

// readlinkat reads the target of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// narPipe runs dump in a goroutine and returns its output as a reader; the
// reader's Close stops the dump (its writes then fail) and waits for it.
func narPipe(dump func(w io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	p := &pipeNAR{pr: pr, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = dump(pw)
		pw.CloseWithError(p.err)
	}()
	return p
}

type pipeNAR struct {
	pr   *io.PipeReader
	done chan struct{}
	err  error // the dump's, once done is closed
}

func (p *pipeNAR) Read(b []byte) (int, error) { return p.pr.Read(b) }

// Close stops the dump if it is still running and reports its failure, if
// it failed before the reader gave up.
func (p *pipeNAR) Close() error {
	p.pr.CloseWithError(errNARClosed)
	<-p.done
	if p.err != nil && !errors.Is(p.err, errNARClosed) {
		return p.err
	}
	return nil
}

var errNARClosed = errors.New("NAR reader closed")
