package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
)

// locate compares the accepted bytes with the file line by line and returns
// the first differing line and how it differs.
func locate(old, cur io.Reader, oldLines int64) (int64, string, error) {
	ro := NewReader(old, 1, 0)
	rc := NewReader(cur, 1, 0)
	ro.NoParse()
	rc.NoParse()
	next := func(r *Reader) ([]byte, bool, error) {
		l, err := r.Next()
		if err == io.EOF {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		// Lines are compared by leaf hash: an over-long line is not kept.
		return l.Leaf, true, nil
	}
	for n := int64(1); n <= oldLines; n++ {
		o, ok, err := next(ro)
		if err != nil || !ok {
			return 0, "", fmt.Errorf("audit: stored snapshot ends before line %d: %v", n, err)
		}
		c, ok, err := next(rc)
		if err != nil {
			return 0, "", err
		}
		if !ok {
			return n, TamperTruncated, nil
		}
		if bytes.Equal(o, c) {
			continue
		}
		o2, ok2, err := next(ro)
		if err != nil {
			return 0, "", err
		}
		c2, okc2, err := next(rc)
		if err != nil {
			return 0, "", err
		}
		switch {
		case ok2 && okc2 && bytes.Equal(c, o2) && bytes.Equal(c2, o):
			return n, TamperReordered, nil
		case ok2 && bytes.Equal(c, o2):
			return n, TamperRemoved, nil
		case !ok2 && n == oldLines && !okc2:
			return n, TamperEdited, nil
		default:
			return n, TamperEdited, nil
		}
	}
	// Every accepted line is present: only the bytes around them changed
	// (this happens when the last accepted line lost its newline).
	return oldLines, TamperEdited, nil
}

// refuse handles a file that does not continue the accepted snapshot h.
// What it stores is held in hold. Its steps: locate the first differing
// line; store the refused version whole as a snapshot of its own
// (storeRefused); judge it with the rule 4 violation added
// (evaluateRefused); attest it; record the evidence (recordEvidence).
func (ing *Ingester) refuse(ctx context.Context, hold *store.Hold, root *os.Root, ws string, f *os.File, h *headState) (*IngestResult, error) {
	accepted, err := cid.Decode(h.Snapshot)
	if err != nil {
		return nil, err
	}
	oldBytes, err := cid.Decode(h.Bytes)
	if err != nil {
		return nil, err
	}
	old, err := ing.Store.Cat(ctx, oldBytes)
	if err != nil {
		return nil, fmt.Errorf("audit: read accepted snapshot: %w", err)
	}
	defer old.Close()
	line, kind, err := locate(old, io.NewSectionReader(f, 0, 1<<62), h.Lines)
	if err != nil {
		return nil, err
	}
	rv, err := ing.storeRefused(ctx, hold, ws, f)
	if err != nil {
		return nil, err
	}
	evd := Evidence{Kind: kind, Line: line, Accepted: accepted, Found: rv.cid, AcceptedBytes: oldBytes, FoundBytes: rv.snap.Bytes,
		Time: ing.now().UTC().Format(time.RFC3339)}
	viol := newViolation(RuleAppendOnly, line, "", ErrNotAppendOnly,
		fmt.Sprintf("line %d %s relative to the snapshot of %d lines (%s)", line, kind, h.Lines, accepted))
	bres, err := ing.evaluateRefused(ctx, hold, root, ws, f, rv.snap.Size, viol)
	if err != nil {
		return nil, err
	}
	res := &IngestResult{Workspace: ws, Snapshot: rv.cid, Bytes: rv.snap.Bytes, Lines: rv.snap.Lines, Size: rv.snap.Size,
		Root: hex.EncodeToString(rv.snap.Root), Boundary: bres, Evidence: &evd, Pending: rv.pending}
	if ing.Attester != nil {
		id, err := ing.attestLog(ctx, ws, rv.cid, rv.snap, rv.bytesSHA, bres)
		if err != nil {
			return nil, err
		}
		res.Attestations = append(res.Attestations, id)
	}
	if err := ing.recordEvidence(ws, evd); err != nil {
		return nil, err
	}
	return res, &TamperError{Workspace: ws, Evidence: evd}
}

// refusedVersion is a refused file version stored by storeRefused.
type refusedVersion struct {
	cid      cid.Cid
	snap     *schemas.AuditLogSnapshot
	bytesSHA []byte // SHA-256 of its complete lines
	pending  int    // bytes after its last complete line
}

// storeRefused stores the complete lines of f, a version that does not
// continue the accepted snapshot, as a snapshot of their own with their own
// tree (no previous snapshot), held in hold.
func (ing *Ingester) storeRefused(ctx context.Context, hold *store.Hold, ws string, f *os.File) (*refusedVersion, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tree := NewTree()
	r := NewReader(io.NewSectionReader(f, 0, fi.Size()), 1, 0)
	r.NoParse()
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		tree.AppendLeafHash(l.Leaf)
	}
	hs := sha256.New()
	bc, err := hold.Add(ctx, io.TeeReader(io.NewSectionReader(f, 0, r.Offset()), hs), store.AddOptions{})
	if err != nil {
		return nil, fmt.Errorf("store refused audit log version: %w", err)
	}
	snap := &schemas.AuditLogSnapshot{Workspace: ws, Bytes: bc, Size: r.Offset(), Lines: r.Lines(), Root: tree.Root()}
	sc, err := ing.putRecord(ctx, hold, snap)
	if err != nil {
		return nil, err
	}
	return &refusedVersion{cid: sc, snap: snap, bytesSHA: hs.Sum(nil), pending: int(r.PendingSize())}, nil
}

// evaluateRefused returns the boundary verdict over the first size bytes of
// a refused version: everything its lines show, judged afresh (not against
// the workspace's state), plus the rule 4 violation viol. The patches it
// names are stored, held in hold.
func (ing *Ingester) evaluateRefused(ctx context.Context, hold *store.Hold, root *os.Root, ws string, f *os.File, size int64, viol Violation) (*Result, error) {
	pc := &patchCache{ing: ing, ctx: ctx, root: root, ws: ws, seen: map[string]PatchInfo{}, store: true, hold: hold}
	ev := NewEvaluator(ing.Policy, NewMemState(), pc.lookup)
	rr := NewReader(io.NewSectionReader(f, 0, size), 1, 0)
	for {
		l, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := ev.Add(&l); err != nil {
			return nil, err
		}
	}
	in, err := ing.inputs(ctx, ws)
	if err != nil {
		return nil, err
	}
	in.AppendOnly = []Violation{viol}
	return ev.Result(rr.Lines(), in)
}

// recordEvidence appends evd to the evidence records of workspace ws.
func (ing *Ingester) recordEvidence(ws string, evd Evidence) error {
	err := ing.DB.Update(func(txn *badger.Txn) error {
		var n int64
		it := txn.NewIterator(badger.IteratorOptions{Prefix: wsKey(ws, "e", "")})
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		it.Close()
		return setJSON(txn, wsKey(ws, "e", seqKey(n)), evd)
	})
	if err != nil {
		return fmt.Errorf("audit: record evidence of %s: %w", ws, err)
	}
	return nil
}

// Evidence returns the refused versions recorded for workspace ws, oldest
// first.
func (ing *Ingester) Evidence(ws string) ([]Evidence, error) {
	var out []Evidence
	err := ing.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: wsKey(ws, "e", ""), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var e Evidence
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Roots returns every snapshot, patch and evidence record of every
// workspace: the GC roots of package audit. Snapshots link their bytes and
// previous snapshots; patch records are found through proposal state.
func (ing *Ingester) Roots(ctx context.Context) ([]cid.Cid, error) {
	var out []cid.Cid
	add := func(s string) {
		if c, err := cid.Decode(s); err == nil {
			out = append(out, c)
		}
	}
	err := ing.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: wsKey("", "")[:len(wsKey("", ""))-1], PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			err := it.Item().Value(func(b []byte) error {
				switch {
				case bytes.Contains(k, []byte("/s/")):
					var e historyEntry
					if json.Unmarshal(b, &e) == nil {
						add(e.Snapshot)
					}
				case bytes.Contains(k, []byte("/e/")):
					var e Evidence
					if json.Unmarshal(b, &e) == nil {
						out = append(out, e.Found)
					}
				case bytes.Contains(k, []byte("/p/")):
					var p ProposalRec
					if json.Unmarshal(b, &p) == nil {
						add(p.Patch.CID)
					}
				case bytes.Contains(k, []byte("/a/")):
					var a ApplyRec
					if json.Unmarshal(b, &a) == nil {
						add(a.Patch.CID)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
