package closure

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package for bad input wraps
// one of them, so callers can test with errors.Is.
var (
	// ErrBadNAR: a NAR stream is malformed (bad token, truncated, trailing
	// data, bad or duplicate entry name, entries out of order).
	ErrBadNAR = errors.New("invalid NAR")
	// ErrHashMismatch: a NAR's SHA-256 or size differs from the narHash or
	// narSize that its path info (or narinfo) claims.
	ErrHashMismatch = errors.New("NAR hash mismatch")
	// ErrIncomplete: a closure lacks a path that one of its paths references.
	ErrIncomplete = errors.New("closure is incomplete")
	// ErrForeignStoreDir: a store path or reference lies outside the
	// closure's store directory.
	ErrForeignStoreDir = errors.New("store path outside the store directory")
	// ErrBadPathInfo: path-info JSON or a narinfo is malformed.
	ErrBadPathInfo = errors.New("invalid path info")
	// ErrNotFound: a store path, narinfo or closure is not known.
	ErrNotFound = errors.New("not found")
	// ErrBadRecord: a stored StorePathInfo or Closure record does not decode
	// or is inconsistent.
	ErrBadRecord = errors.New("invalid closure record")
)

// NARError reports a malformed NAR. Entry is the path inside the NAR ("/" is
// the root) where the problem was found, when known.
type NARError struct {
	StorePath string
	Entry     string
	Reason    string
	Err       error
}

func (e *NARError) Error() string {
	s := "invalid NAR"
	if e.StorePath != "" {
		s += " of " + e.StorePath
	}
	if e.Entry != "" {
		s += fmt.Sprintf(" at entry %q", e.Entry)
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *NARError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBadNAR, e.Err}
	}
	return []error{ErrBadNAR}
}

// HashMismatchError reports a NAR whose hash or size is not the expected one.
// Hashes are in Nix's "sha256:<nixbase32>" form.
type HashMismatchError struct {
	StorePath    string
	WantHash     string
	GotHash      string
	WantSize     int64
	GotSize      int64
	CheckingFile bool // the compressed file (FileHash), not the NAR
}

func (e *HashMismatchError) Error() string {
	what := "NAR"
	if e.CheckingFile {
		what = "compressed NAR file"
	}
	if e.WantHash != e.GotHash {
		return fmt.Sprintf("%s: %s hash mismatch: expected %s, got %s", e.StorePath, what, e.WantHash, e.GotHash)
	}
	return fmt.Sprintf("%s: %s size mismatch: expected %d bytes, got %d (hash %s)", e.StorePath, what, e.WantSize, e.GotSize, e.GotHash)
}

func (e *HashMismatchError) Is(target error) bool { return target == ErrHashMismatch }

// MissingReferenceError reports a path of a closure that references a path
// the closure does not contain.
type MissingReferenceError struct {
	Path      string // the referring path
	Reference string // the missing one
}

func (e *MissingReferenceError) Error() string {
	return fmt.Sprintf("%v: %s references %s, which is not in the closure", ErrIncomplete, e.Path, e.Reference)
}

func (e *MissingReferenceError) Is(target error) bool { return target == ErrIncomplete }

// StoreDirError reports a store path (or reference) outside the store dir.
type StoreDirError struct {
	Path     string // the offending path
	Referrer string // the path that references it, if any
	StoreDir string
}

func (e *StoreDirError) Error() string {
	if e.Referrer != "" {
		return fmt.Sprintf("%s references %q, which is not a store path in %s", e.Referrer, e.Path, e.StoreDir)
	}
	return fmt.Sprintf("%q is not a store path in %s", e.Path, e.StoreDir)
}

func (e *StoreDirError) Is(target error) bool { return target == ErrForeignStoreDir }

// PathInfoError reports malformed path-info JSON or narinfo text.
type PathInfoError struct {
	Source string // "path-info JSON", "narinfo <url>", …
	Path   string // the store path concerned, if known
	Reason string
	Err    error
}

func (e *PathInfoError) Error() string {
	s := e.Source
	if e.Path != "" {
		s += " for " + e.Path
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *PathInfoError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBadPathInfo, e.Err}
	}
	return []error{ErrBadPathInfo}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
