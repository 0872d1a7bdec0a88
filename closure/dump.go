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
	"syscall"

	"github.com/nix-community/go-nix/pkg/nar"
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
// The store is read through an os.Root opened on storeDir and nothing is
// followed: every node is examined with Lstat, a symlink becomes a NAR
// symlink (its target is never read through), and files and directories are
// opened with O_NOFOLLOW, so a node swapped for a symlink while the dump
// runs fails the dump instead of leading out of the store path. Nothing is
// written to the store. A regular file is executable in the NAR when its
// owner may execute it (Nix's rule); entries are in byte order of their
// names. Errors are *DumpError naming the store path and the entry.
func DumpNAR(w io.Writer, storeDir, storePath string) error {
	if storeDir == "" {
		storeDir = DefaultStoreDir
	}
	if err := checkStorePath(storePath, storeDir, ""); err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: err}
	}
	root, err := os.OpenRoot(storeDir)
	if err != nil {
		return &DumpError{StorePath: storePath, Entry: "/", Err: err}
	}
	defer root.Close()
	return dumpIn(root, w, storePath, path.Base(storePath))
}

// dumpIn dumps the store path whose base name is base in root (the store
// directory).
func dumpIn(root *os.Root, w io.Writer, storePath, base string) error {
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
	d := &dumper{root: root, nw: nw, storePath: storePath, buf: buf[len(buf)/2:]}
	if err := d.node(base, "/"); err != nil {
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
	root      *os.Root
	nw        *nar.Writer
	storePath string
	buf       []byte
}

func (d *dumper) fail(entry string, err error) error {
	return &DumpError{StorePath: d.storePath, Entry: entry, Err: err}
}

// node writes the node at name (relative to the root) as NAR entry entry.
func (d *dumper) node(name, entry string) error {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return d.fail(entry, err)
	}
	return d.nodeInfo(name, entry, fi)
}

func (d *dumper) nodeInfo(name, entry string, fi fs.FileInfo) error {
	switch mode := fi.Mode(); {
	case mode&fs.ModeSymlink != 0:
		target, err := d.root.Readlink(name)
		if err != nil {
			return d.fail(entry, err)
		}
		if err := d.nw.WriteHeader(&nar.Header{Path: entry, Type: nar.TypeSymlink, LinkTarget: target}); err != nil {
			return d.fail(entry, err)
		}
		return nil
	case mode.IsDir():
		f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
		if err != nil {
			return d.fail(entry, err)
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return d.fail(entry, err)
		}
		// Nix's order: names compared as bytes.
		slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		if err := d.nw.WriteHeader(&nar.Header{Path: entry, Type: nar.TypeDirectory}); err != nil {
			return d.fail(entry, err)
		}
		for _, e := range ents {
			child := path.Join(entry, e.Name())
			info, err := e.Info() // lstat of the entry
			if err != nil {
				return d.fail(child, err)
			}
			if err := d.nodeInfo(name+"/"+e.Name(), child, info); err != nil {
				return err
			}
		}
		return nil
	case mode.IsRegular():
		f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return d.fail(entry, err)
		}
		defer f.Close()
		// The size and mode of what was opened, not of what was looked
		// at: a file replaced in between is dumped as it now is.
		fi, err = f.Stat()
		if err != nil {
			return d.fail(entry, err)
		}
		if !fi.Mode().IsRegular() {
			return d.fail(entry, fmt.Errorf("not a regular file any more (%s)", fi.Mode().Type()))
		}
		hdr := &nar.Header{Path: entry, Type: nar.TypeRegular, Size: fi.Size(), Executable: fi.Mode()&0o100 != 0}
		if err := d.nw.WriteHeader(hdr); err != nil {
			return d.fail(entry, err)
		}
		n, err := io.CopyBuffer(d.nw, onlyReader{f}, d.buf)
		if err != nil {
			return d.fail(entry, err)
		}
		if n != fi.Size() {
			return d.fail(entry, fmt.Errorf("file changed size while read: %d bytes, %d at open", n, fi.Size()))
		}
		return nil
	default:
		return d.fail(entry, fmt.Errorf("file type %s cannot be in a NAR", fi.Mode().Type()))
	}
}

// onlyReader hides os.File's WriteTo, so io.CopyBuffer reads with the buffer
// it is given.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

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
