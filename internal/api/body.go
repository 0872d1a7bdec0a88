package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/go-json-experiment/json/jsontext"
)

// BodyError is a request body that could not be read: cut short before its
// Content-Length (400), not sent in time (408), or the connection failed
// under it (400). It wraps the read error.
type BodyError struct {
	Err error
}

func (e *BodyError) Error() string {
	switch {
	case errors.Is(e.Err, io.ErrUnexpectedEOF):
		return "request body: shorter than its Content-Length (" + e.Err.Error() + ")"
	case errors.Is(e.Err, os.ErrDeadlineExceeded):
		return "request body: not received in time (" + e.Err.Error() + ")"
	}
	return "request body: " + e.Err.Error()
}

func (e *BodyError) Unwrap() error { return e.Err }

func (e *BodyError) status() int {
	if errors.Is(e.Err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// bodyReader turns the transport's read errors into *BodyError so that
// handlers map them to a 4xx status, not a failure of the node, and keeps
// the first one: a failed read also cancels the request's context, and a
// handler that reports that instead would hide the client's fault.
type bodyReader struct {
	r io.ReadCloser
	// err is the first read error; the body may be read on another
	// goroutine than the handler's (store.Add reads it in its splitter).
	mu  sync.Mutex
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) && !errors.Is(err, ErrBodyDigest) {
			err = &BodyError{Err: err}
		}
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// bodyFault returns the error r's body failed with, if it did, else err:
// the cause to report for a write that failed while streaming its body.
func bodyFault(r *http.Request, err error) error {
	if br, ok := r.Body.(*bodyReader); ok {
		br.mu.Lock()
		defer br.mu.Unlock()
		if br.err != nil {
			return br.err
		}
	}
	return err
}

func (b *bodyReader) Close() error { return b.r.Close() }

// spoolMem is how much of a spooled body is kept in memory; the rest goes to
// a temporary file.
const spoolMem = 4 << 20

// spoolDir is where larger signed bodies wait for their digest check.
const spoolDir = "tmp"

// spoolBody reads r to its end (at most max bytes) before anything acts on
// it, so that a body failing its signed digest, cut short or too large is
// refused with nothing stored. Up to spoolMem bytes stay in memory, beyond
// that in a temporary file under dir that Close removes.
func spoolBody(w http.ResponseWriter, r io.ReadCloser, max int64, dir string) (io.ReadCloser, int64, error) {
	lr := http.MaxBytesReader(w, r, max)
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, lr, spoolMem+1)
	if err == io.EOF {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), n, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool request body: %w", err)
	}
	f, err := os.CreateTemp(dir, "body-*")
	if err != nil {
		return nil, 0, fmt.Errorf("spool request body: %w", err)
	}
	sf := &spoolFile{f}
	if _, err := f.Write(buf.Bytes()); err != nil {
		sf.Close()
		return nil, 0, fmt.Errorf("spool request body to %s: %w", f.Name(), err)
	}
	m, err := io.Copy(f, lr)
	if err != nil {
		sf.Close()
		var mbe *http.MaxBytesError
		var be *BodyError
		if errors.As(err, &mbe) || errors.As(err, &be) || errors.Is(err, ErrBodyDigest) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("spool request body to %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		sf.Close()
		return nil, 0, err
	}
	return sf, n + m, nil
}

type spoolFile struct{ *os.File }

func (s *spoolFile) Close() error {
	err := s.File.Close()
	os.Remove(s.File.Name())
	return err
}

// cleanSpool removes bodies left behind by a process that stopped mid-request.
func cleanSpool(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "body-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// ErrJSON is a JSON request or answer that is not strict JSON: malformed,
// a member name twice in one object, or two names of one object that differ
// only in case (which a case-insensitive decoder would merge).
var ErrJSON = errors.New("invalid JSON")

// checkJSON refuses b unless it is one JSON value whose objects have no
// duplicate member names, exactly or ignoring case. The error names the
// member and its JSON pointer.
func checkJSON(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	// One set of folded names per open object.
	var stack []map[string]bool
	var inName []bool // per open container: next string token is a name
	values := 0
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			if values == 0 {
				return fmt.Errorf("%w: no value", ErrJSON)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrJSON, err)
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return fmt.Errorf("%w: more than one value (offset %d)", ErrJSON, dec.InputOffset())
			}
		}
		switch k := tok.Kind(); k {
		case '{':
			stack = append(stack, map[string]bool{})
			inName = append(inName, true)
			continue
		case '[':
			stack = append(stack, nil)
			inName = append(inName, false)
			continue
		case '}', ']':
			stack, inName = stack[:len(stack)-1], inName[:len(inName)-1]
		default:
			if d := len(stack); d > 0 && stack[d-1] != nil && inName[d-1] {
				name := tok.String()
				f := strings.ToLower(name)
				if stack[d-1][f] {
					return fmt.Errorf("%w: member %q at %s repeats a name of its object (names are exact-case and unique)",
						ErrJSON, name, dec.StackPointer())
				}
				stack[d-1][f] = true
				inName[d-1] = false
				continue
			}
		}
		// A value ended: in an object the next token is a name again.
		if d := len(stack); d > 0 && stack[d-1] != nil {
			inName[d-1] = true
		}
	}
}
