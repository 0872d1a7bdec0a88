package closure

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/agentix/agentix-store/store"
	"github.com/ipfs/go-cid"
	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// NARChunker is the chunker every NAR is stored with: content-defined, so
// that NARs of successive generations that differ a little share most blocks.
const NARChunker = "buzhash"

// CheckNAR reads a whole NAR from r and checks its structure with go-nix's
// nar.Reader, plus what that reader lets through: the stream must end right
// after the root node (a stream cut at a token boundary is truncated, bytes
// after the root are trailing garbage), no entry name may be empty, ".",
// "..", or contain "/" or NUL, and names in a directory must be strictly
// increasing (no duplicates). Errors are *NARError (ErrBadNAR).
func CheckNAR(r io.Reader) error {
	return checkNAR(r, "")
}

// eofIsUnexpected turns an end of input into io.ErrUnexpectedEOF: a NAR
// parser never needs to read past the root node's closing token, so any end
// of input it sees is a truncation.
type eofIsUnexpected struct{ r io.Reader }

func (e eofIsUnexpected) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		if n > 0 {
			return n, nil
		}
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

const wrongOrderPrefix = "received header in the wrong order, "

func checkNAR(r io.Reader, storePath string) (err error) {
	bad := func(entry, reason string, err error) error {
		return &NARError{StorePath: storePath, Entry: entry, Reason: reason, Err: err}
	}
	nr, err := nar.NewReader(eofIsUnexpected{r})
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return bad("", "truncated (no NAR header)", nil)
		}
		return bad("", "not a NAR", err)
	}
	defer nr.Close()
	var prev *nar.Header
	var buf []byte
	defer func() {
		if buf != nil {
			checkBufs.Put(&buf)
		}
	}()
	for {
		hdr, err := nr.Next()
		if err == io.EOF {
			break
		}
		entry := ""
		if prev != nil {
			entry = prev.Path
		}
		if err != nil {
			msg := err.Error()
			switch {
			case errors.Is(err, io.ErrUnexpectedEOF):
				return bad(entry, "truncated", nil)
			case strings.HasPrefix(msg, wrongOrderPrefix):
				// go-nix joins names with path.Join, so a name ".."
				// shows up as an entry that climbs back out of its
				// directory, i.e. sorts before the previous one.
				newPath, _, _ := strings.Cut(strings.TrimPrefix(msg, wrongOrderPrefix), " <= ")
				if prev != nil && (newPath == "/" || strings.HasPrefix(prev.Path+"/", newPath+"/")) {
					return bad(prev.Path, fmt.Sprintf(`entry name ".." (or similar) leads out of its directory to %q`, newPath), nil)
				}
				return bad(newPath, "entries not in strictly increasing name order", nil)
			case strings.HasPrefix(msg, "name `"):
				return bad(entry, "entry name contains '/' or NUL", err)
			default:
				return bad(entry, "malformed", err)
			}
		}
		if err := hdr.Validate(); err != nil {
			return bad(hdr.Path, "bad entry", err)
		}
		if prev != nil && hdr.Path == prev.Path {
			if prev.Type == nar.TypeDirectory {
				return bad(hdr.Path, `entry name is empty, "." or ".." (refers to its own directory)`, nil)
			}
			return bad(hdr.Path, "duplicate entry name", nil)
		}
		if prev != nil && hdr.Path == "/" {
			return bad(prev.Path, `entry name ".." leads out of the NAR root`, nil)
		}
		if hdr.Type == nar.TypeSymlink && strings.ContainsRune(hdr.LinkTarget, 0) {
			return bad(hdr.Path, "symlink target contains NUL", nil)
		}
		if hdr.Type == nar.TypeRegular && hdr.Size > 0 {
			if buf == nil {
				buf = *checkBufs.Get().(*[]byte)
			}
			// Large reads: io.Discard's own ReadFrom would read 8 KiB
			// at a time.
			if _, err := io.CopyBuffer(discard{}, nr, buf); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return bad(hdr.Path, "truncated in file contents", nil)
				}
				return bad(hdr.Path, "reading file contents", err)
			}
		}
		prev = hdr
	}
	if prev == nil {
		return bad("", "empty NAR", nil)
	}
	// The root node is complete; nothing may follow it.
	var one [1]byte
	n, err := r.Read(one[:])
	for n == 0 && err == nil {
		n, err = r.Read(one[:])
	}
	if n > 0 {
		return bad("", "trailing data after the root node", nil)
	}
	if err != io.EOF {
		return bad("", "reading after the root node", err)
	}
	return nil
}

// checkBufs are checkNAR's read buffers.
var checkBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// discard is io.Discard without ReadFrom, so that io.CopyBuffer uses the
// buffer it is given.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// narResult is what storing one NAR produced.
type narResult struct {
	CID  cid.Cid
	Hash *nixhash.Hash // sha256 of the NAR bytes
	Size int64
}

// countWriter counts bytes written through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// storeNAR streams a NAR from r into st as a UnixFS file (buzhash chunks),
// checking its structure (CheckNAR) and hashing it on the way. The NAR is
// never held whole in memory: a fanout hands the same buffers to the hasher,
// the checker and store.Add, which run at once. Nothing is pinned; the NAR's
// CID is held in fl from the instant Add returns (see inflight) and stays
// held when storeNAR succeeds — the caller releases it. On a malformed NAR
// the error is a *NARError, whatever store.Add made of the cut-short stream.
func storeNAR(ctx context.Context, st *store.Store, fl *inflight, r io.Reader, storePath string, progress func(int64)) (narResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := startFanout(ctx, r)
	defer func() {
		cancel()
		<-f.done // r is the caller's again
	}()
	hr, cr, ar := &pieceReader{f: f, i: 0}, &pieceReader{f: f, i: 1}, &pieceReader{f: f, i: 2}

	h := sha256.New()
	var size int64
	hashDone := make(chan error, 1)
	go func() {
		n, err := hr.WriteTo(h)
		size = n
		hr.Close()
		hashDone <- err
	}()
	checkDone := make(chan error, 1)
	go func() {
		err := checkNAR(cr, storePath)
		if err != nil {
			cancel() // stop the reader and Add
		}
		cr.Close()
		checkDone <- err
	}()

	p := fl.begin()
	c, addErr := st.Add(ctx, p.reader(ar), store.AddOptions{Chunker: NARChunker, Progress: progress})
	if testHookAfterAdd != nil {
		testHookAfterAdd()
	}
	fl.finish(p, c)
	if addErr != nil {
		// Add's reader goroutine may still be reading ar: it is not
		// closed here, the fanout is stopped instead.
		cancel()
	}
	checkErr, hashErr := <-checkDone, <-hashDone

	var err error
	var ne *NARError
	switch {
	case errors.As(checkErr, &ne):
		err = checkErr
	case addErr != nil:
		err = fmt.Errorf("store NAR of %s: %w", storePath, addErr)
	case checkErr != nil:
		err = fmt.Errorf("check NAR of %s: %w", storePath, checkErr)
	case hashErr != nil:
		err = fmt.Errorf("hash NAR of %s: %w", storePath, hashErr)
	}
	if err != nil {
		if c.Defined() {
			fl.remove([]cid.Cid{c})
		}
		return narResult{}, err
	}
	return narResult{CID: c, Hash: sumHash(h), Size: size}, nil
}

func sumHash(h hash.Hash) *nixhash.Hash {
	return nixhash.MustNewHash(nixhash.SHA256, h.Sum(nil))
}

// FormatHash renders a hash the way Nix's narinfo and 2.8's path-info do:
// "sha256:<nixbase32>".
func FormatHash(h *nixhash.Hash) string { return h.Format(nixhash.NixBase32, true) }

// testHookAfterAdd, set by tests only, runs between store.Add's return and
// the registration of its CID: the instant a GC must not collect it in.
var testHookAfterAdd func()
