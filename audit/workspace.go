package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FileLookup returns a PatchLookup reading patches from the workspace at
// root, hashing their bytes. It stores nothing.
func FileLookup(root string) PatchLookup {
	return func(rel string) (PatchInfo, error) {
		b, err := readPatch(root, rel)
		if errors.Is(err, fs.ErrNotExist) {
			return PatchInfo{}, nil
		}
		if err != nil {
			return PatchInfo{}, err
		}
		s := sha256.Sum256(b)
		return PatchInfo{Found: true, SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))}, nil
	}
}

// readPatch reads the workspace-relative file rel under root, refusing
// anything that is not a regular file.
func readPatch(root, rel string) ([]byte, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	if fi.Size() > MaxPatchSize {
		return nil, fmt.Errorf("%s: %d bytes, limit %d", p, fi.Size(), MaxPatchSize)
	}
	return os.ReadFile(p)
}

// CheckReport is the result of a local check of a workspace.
type CheckReport struct {
	Workspace string  `json:"workspace"`
	Lines     int64   `json:"lines"`
	Bytes     int64   `json:"bytes"`
	Root      string  `json:"root"` // hex RFC 6962 root over the lines
	Pending   int     `json:"pendingBytes,omitempty"`
	Result    *Result `json:"boundary"`
}

// CheckWorkspace runs the boundary check over the workspace at root as it is
// now, without a store: the audit log's lines, with every patch read from
// disk. Rule 1's "bytes stored then" can only compare against the bytes
// present now, and rule 4 is checked only against in.AppendOnly; use an
// Ingester for the history-aware check.
func CheckWorkspace(root string, p *Policy, in Inputs) (*CheckReport, error) {
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(AuditLogPath)))
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	ev := NewEvaluator(p, NewMemState(), FileLookup(root))
	t := NewTree()
	r := NewReader(f, 1, 0)
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		t.Append(l.Raw)
		if err := ev.Add(&l); err != nil {
			return nil, err
		}
	}
	res, err := ev.Result(r.Lines(), in)
	if err != nil {
		return nil, err
	}
	return &CheckReport{Workspace: root, Lines: r.Lines(), Bytes: r.Offset(), Root: hex.EncodeToString(t.Root()),
		Pending: len(r.Pending()), Result: res}, nil
}
