package closure

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

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
			if _, err := io.Copy(io.Discard, nr); err != nil {
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
// never held whole in memory: one goroutine reads r, hashes and parses the
// bytes and hands them through a bounded pipe to store.Add. Nothing is
// pinned. On a malformed NAR the error is a *NARError, whatever store.Add
// made of the cut-short stream.
func storeNAR(ctx context.Context, st *store.Store, r io.Reader, storePath string, progress func(int64)) (narResult, error) {
	pr, pw := io.Pipe()
	bw := bufio.NewWriterSize(pw, 256<<10)
	h := sha256.New()
	cnt := &countWriter{}
	tee := io.TeeReader(bufio.NewReaderSize(r, 64<<10), io.MultiWriter(h, cnt, bw))

	done := make(chan error, 1)
	go func() {
		err := checkNAR(tee, storePath)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err) // nil → EOF for the reader
		done <- err
	}()
	c, addErr := st.Add(ctx, pr, store.AddOptions{Chunker: NARChunker, Progress: progress})
	// Unblock the checker if Add stopped early.
	pr.CloseWithError(errStoreStopped)
	checkErr := <-done
	if addErr != nil && errors.Is(checkErr, errStoreStopped) {
		return narResult{}, fmt.Errorf("store NAR of %s: %w", storePath, addErr)
	}
	var ne *NARError
	if errors.As(checkErr, &ne) {
		return narResult{}, checkErr
	}
	if addErr != nil {
		return narResult{}, fmt.Errorf("store NAR of %s: %w", storePath, addErr)
	}
	if checkErr != nil {
		return narResult{}, fmt.Errorf("store NAR of %s: %w", storePath, checkErr)
	}
	return narResult{CID: c, Hash: sumHash(h), Size: cnt.n}, nil
}

var errStoreStopped = errors.New("store stopped reading")

func sumHash(h hash.Hash) *nixhash.Hash {
	return nixhash.MustNewHash(nixhash.SHA256, h.Sum(nil))
}

// FormatHash renders a hash the way Nix's narinfo and 2.8's path-info do:
// "sha256:<nixbase32>".
func FormatHash(h *nixhash.Hash) string { return h.Format(nixhash.NixBase32, true) }
