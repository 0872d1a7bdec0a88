package audit

import (
	"bytes"
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
// root, hashing their bytes. It stores nothing. Reads stay inside the
// workspace (see readPatch).
func FileLookup(root string) PatchLookup {
	return func(rel string) (PatchInfo, error) {
		r, err := os.OpenRoot(root)
		if err != nil {
			return PatchInfo{}, fmt.Errorf("workspace: %w", err)
		}
		defer r.Close()
		return rootLookup(r)(rel)
	}
}

// rootLookup is FileLookup over an open workspace root.
func rootLookup(r *os.Root) PatchLookup {
	return func(rel string) (PatchInfo, error) {
		b, err := readPatch(r, rel)
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

// OutsideError says that reading Path (workspace-relative, as the audit log
// or Agentix's layout names it) would leave the workspace, through a
// symlink or "..". It matches ErrOutsideWorkspace.
type OutsideError struct {
	Path string
	Err  error // what os.Root said, if anything
}

func (e *OutsideError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s: %v", e.Path, ErrOutsideWorkspace)
	}
	return fmt.Sprintf("%s: %v (%v)", e.Path, ErrOutsideWorkspace, e.Err)
}

func (e *OutsideError) Is(target error) bool { return target == ErrOutsideWorkspace }

// escapes reports whether err is os.Root refusing a path that leads out of
// the root (its error is not exported; TestWorkspaceEscapes would notice a
// change of its text).
func escapes(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

// openIn opens the workspace-relative file rel under r, refusing anything
// that leaves the workspace (*OutsideError) or is not a regular file
// (fs.ErrNotExist).
func openIn(r *os.Root, rel string) (*os.File, error) {
	f, err := r.Open(filepath.FromSlash(rel))
	if escapes(err) {
		return nil, &OutsideError{Path: rel, Err: err}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file: %w", rel, fs.ErrNotExist)
	}
	return f, nil
}

// readPatch reads the workspace-relative file rel under r: a regular file
// of at most MaxPatchSize bytes inside the workspace.
func readPatch(r *os.Root, rel string) ([]byte, error) {
	f, err := openIn(r, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPatchSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if len(b) > MaxPatchSize {
		return nil, fmt.Errorf("%s: more than %d bytes", rel, MaxPatchSize)
	}
	return b, nil
}

// openAuditLog opens the workspace's audit log through r. A log that leads
// out of the workspace is a *Violation (rule 3, ErrOutsideWorkspace, naming
// the path): what is not the workspace's cannot show the workspace kept the
// boundary, and nothing of it is read.
func openAuditLog(r *os.Root) (*os.File, error) {
	f, err := openIn(r, AuditLogPath)
	var oe *OutsideError
	if errors.As(err, &oe) {
		v := newViolation(RuleSandbox, 0, "", ErrOutsideWorkspace, oe.Error())
		return nil, &v
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return f, nil
}

// AttestedSnapshot is an earlier snapshot of the log, as an audit-log/v1
// attestation states it (the caller verifies the attestation): after Lines
// lines the RFC 6962 root was Root. Bytes, when the caller has them (from a
// bundle's CAR), are the snapshot's exact bytes; with them a divergence is
// reported at its first differing line.
type AttestedSnapshot struct {
	ID    string // attestation id, for reports
	Lines int64
	Root  []byte
	Bytes []byte
}

// SnapshotCheck is the rule 4 outcome for one attested snapshot: the
// consistency proof from the attested root at Lines to the root recomputed
// over the current file.
type SnapshotCheck struct {
	ID         string   `json:"id"`
	Lines      int64    `json:"lines"`
	Root       string   `json:"root"`
	Consistent bool     `json:"consistent"`
	Proof      []string `json:"consistencyProof,omitempty"`
}

// CheckReport is the result of a local check of a workspace.
type CheckReport struct {
	Workspace string          `json:"workspace"`
	Lines     int64           `json:"lines"`
	Bytes     int64           `json:"bytes"`
	Root      string          `json:"root"` // hex RFC 6962 root over the lines
	Pending   int             `json:"pendingBytes,omitempty"`
	Snapshots []SnapshotCheck `json:"snapshots,omitempty"`
	Result    *Result         `json:"boundary"`
}

// CheckWorkspace runs the boundary check over the workspace at root as it is
// now, without a store: the audit log's lines, with every patch read from
// disk. Rule 1's "bytes stored then" can only compare against the bytes
// present now. Rule 4 holds when the file is consistent with every snapshot
// of in.Snapshots: for each, the RFC 6962 consistency proof from its
// attested root at N lines to the root recomputed over the current N' ≥ N
// lines verifies; in.AppendOnly adds violations found elsewhere.
func CheckWorkspace(root string, p *Policy, in Inputs) (*CheckReport, error) {
	wr, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	defer wr.Close()
	f, err := openAuditLog(wr)
	var esc *Violation
	if errors.As(err, &esc) {
		st := NewMemState()
		st.AddViolation(*esc)
		res, err := NewEvaluator(p, st, nil).Result(0, in)
		if err != nil {
			return nil, err
		}
		return &CheckReport{Workspace: root, Root: hex.EncodeToString(NewTree().Root()), Result: res}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ev := NewEvaluator(p, NewMemState(), rootLookup(wr))
	t := NewTree()
	// Rule 4 needs the compact range at each attested size and the leaf
	// hashes after the smallest one.
	at := map[int64][][]byte{}
	minN := int64(-1)
	for _, s := range in.Snapshots {
		at[s.Lines] = nil
		if minN < 0 || s.Lines < minN {
			minN = s.Lines
		}
	}
	if _, ok := at[0]; ok {
		at[0] = [][]byte{}
	}
	var leaves [][]byte
	r := NewReader(f, 1, 0)
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		lh := l.Leaf
		t.AppendLeafHash(lh)
		if minN >= 0 {
			if l.Number > minN {
				leaves = append(leaves, lh)
			}
			if _, ok := at[l.Number]; ok {
				at[l.Number] = t.Hashes()
			}
		}
		if err := ev.Add(&l); err != nil {
			return nil, err
		}
	}
	rep := &CheckReport{Workspace: root, Lines: r.Lines(), Bytes: r.Offset(), Root: hex.EncodeToString(t.Root()),
		Pending: int(r.PendingSize())}
	for _, s := range in.Snapshots {
		var later [][]byte
		if i := s.Lines - minN; i >= 0 && i <= int64(len(leaves)) {
			later = leaves[i:]
		}
		sc, v, err := checkSnapshot(f, s, r.Lines(), t.Root(), at[s.Lines], later)
		if err != nil {
			return nil, err
		}
		rep.Snapshots = append(rep.Snapshots, sc)
		if v != nil {
			in.AppendOnly = append(in.AppendOnly, *v)
		}
	}
	if rep.Result, err = ev.Result(r.Lines(), in); err != nil {
		return nil, err
	}
	return rep, nil
}

// checkSnapshot checks one attested snapshot against the current file of
// n lines and root cur. hashes is the compact range at s.Lines (nil when the
// file is shorter), later the leaf hashes of lines s.Lines+1..n.
func checkSnapshot(f *os.File, s AttestedSnapshot, n int64, cur []byte, hashes, later [][]byte) (SnapshotCheck, *Violation, error) {
	sc := SnapshotCheck{ID: s.ID, Lines: s.Lines, Root: hex.EncodeToString(s.Root)}
	fail := func(line int64, detail string) (SnapshotCheck, *Violation, error) {
		if s.Bytes != nil {
			// The file as opened (once) above, from its start.
			l, kind, err := locate(bytes.NewReader(s.Bytes), io.NewSectionReader(f, 0, 1<<62), s.Lines)
			if err == nil {
				line, detail = l, fmt.Sprintf("line %d %s", l, kind)
			}
		}
		v := newViolation(RuleAppendOnly, line, "", ErrNotAppendOnly,
			fmt.Sprintf("%s relative to the attested snapshot of %d lines (%s)", detail, s.Lines, s.ID))
		return sc, &v, nil
	}
	if s.Lines > n || hashes == nil {
		return fail(n+1, fmt.Sprintf("the file has %d lines", n))
	}
	tr, err := LoadTree(uint64(s.Lines), hashes)
	if err != nil {
		return sc, nil, err
	}
	for _, lh := range later {
		tr.AppendLeafHash(lh)
	}
	prf, err := tr.ConsistencyProof(uint64(s.Lines))
	if err != nil {
		return sc, nil, err
	}
	for _, h := range prf {
		sc.Proof = append(sc.Proof, hex.EncodeToString(h))
	}
	if err := VerifyConsistency(uint64(s.Lines), uint64(n), prf, s.Root, cur); err != nil {
		return fail(0, "the first lines no longer hash to the attested root")
	}
	sc.Consistent = true
	return sc, nil, nil
}
