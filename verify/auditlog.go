package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/schemas"
)

// Errors of the audit-log checks of CheckNode. Test with errors.Is; the
// divergence kinds also match audit.ErrNotAppendOnly.
var (
	// ErrAuditRoot: the raw audit log bytes a snapshot links do not give
	// the attested RFC 6962 root or line count, or the snapshot record
	// disagrees with its attestation.
	ErrAuditRoot = errors.New("audit log bytes do not match the attested snapshot")
	// ErrAuditTruncated: a later snapshot of a workspace has fewer lines
	// than an earlier attested one and is its prefix.
	ErrAuditTruncated = errors.New("audit log truncated below an earlier attested snapshot")
	// ErrAuditEdited: an already-attested audit line has other bytes in a
	// later snapshot.
	ErrAuditEdited = errors.New("attested audit line edited")
	// ErrAuditReordered: already-attested audit lines appear in another
	// order in a later snapshot.
	ErrAuditReordered = errors.New("attested audit lines reordered")
	// ErrAuditRemoved: an already-attested audit line is missing from a
	// later snapshot, the lines after it moved up.
	ErrAuditRemoved = errors.New("attested audit line removed")
)

// AppendOnlyError reports a later snapshot of a workspace's audit log that
// does not continue an earlier attested one: the RFC 6962 consistency proof
// from the earlier root fails. Line is the first 1-based line that differs
// (0 when the earlier bytes were not available to compare) and Kind one of
// ErrAuditTruncated, ErrAuditEdited, ErrAuditReordered, ErrAuditRemoved
// (nil when unknown).
type AppendOnlyError struct {
	Workspace     string
	Earlier       string // attestation id of the earlier snapshot
	EarlierLines  int64
	Later         string // attestation id of the later snapshot
	LaterLines    int64
	Line          int64
	Kind          error
	ProofMismatch bool // the consistency proof was computed and failed
}

func (e *AppendOnlyError) Error() string {
	what := "does not continue"
	if e.Kind != nil {
		what = e.Kind.Error() + ":"
	}
	at := ""
	if e.Line > 0 {
		at = fmt.Sprintf(" at line %d", e.Line)
	}
	return fmt.Sprintf("%s: audit log of %s: snapshot %s (%d lines) %s%s relative to the earlier attested snapshot %s (%d lines); no consistency proof holds",
		audit.ErrNotAppendOnly, e.Workspace, e.Later, e.LaterLines, what, at, e.Earlier, e.EarlierLines)
}

// Is matches audit.ErrNotAppendOnly and the kind.
func (e *AppendOnlyError) Is(target error) bool {
	return target == audit.ErrNotAppendOnly || (e.Kind != nil && target == e.Kind)
}

func init() {
	reasons = append([]struct {
		err  error
		code string
	}{
		{ErrAuditRoot, "audit-root-mismatch"},
		{ErrAuditTruncated, "audit-log-truncated"},
		{ErrAuditEdited, "audit-line-edited"},
		{ErrAuditReordered, "audit-lines-reordered"},
		{ErrAuditRemoved, "audit-line-removed"},
		{audit.ErrNotAppendOnly, "not-append-only"},
		// Boundary violations recomputed by the auditor, by reason.
		{audit.ErrNoProposal, "controller-bypass"},
		{audit.ErrSourceModified, "source-modified"},
		{audit.ErrPatchChanged, "patch-changed"},
		{audit.ErrPatchMissing, "patch-missing"},
		{audit.ErrPatchUnnamed, "patch-unnamed"},
		{audit.ErrNoApproval, "no-approval"},
		{audit.ErrApprovalLate, "approval-late"},
		{audit.ErrAgentFlag, "agent-flag"},
		{audit.ErrDeniedApplied, "denied-applied"},
		{audit.ErrUnparseable, "unparseable-line"},
		{audit.ErrAmbiguousKey, "ambiguous-key"},
		{audit.ErrOutsideWorkspace, "outside-workspace"},
		{audit.ErrClosureBadApply, "closure-bad-apply"},
		{audit.ErrClosureUnknown, "closure-unknown-apply"},
		{audit.ErrBoundaryViolated, "boundary-violated"},
	}, reasons...)
}

// maxAuditBytes bounds the audit log bytes fetched for one snapshot.
const maxAuditBytes = 1 << 30

// snapAtt is one verified audit-log/v1 attestation and what the auditor
// recomputed from its raw bytes.
type snapAtt struct {
	id    string
	index uint64
	pred  attest.AuditLogPredicate
	root  []byte   // attested root
	raw   []byte   // exact bytes, nil when they could not be checked
	lines [][]byte // the lines of raw, without newlines
	ok    bool     // raw hashes to root with pred.Snapshot.Size lines
}

// auditLogs checks every audit-log/v1 snapshot in the log: each one's raw
// bytes against its attested root and line count, each against the previous
// snapshot of its workspace (consistency), and the safety boundary,
// recomputed over the latest good snapshot of each workspace with the
// auditor's policy.
func (na *nodeAudit) auditLogs(all []attest.Record) {
	var snaps []*snapAtt
	for _, rec := range all {
		if rec.PredicateType != attest.PredicateAuditLog || rec.LogIndex >= na.size {
			continue
		}
		res, ok := na.attestation(rec.ID, attest.PredicateAuditLog)
		if !ok {
			continue
		}
		s := &snapAtt{id: rec.ID, index: rec.LogIndex}
		if err := res.Statement.DecodePredicate(&s.pred); err != nil {
			na.r.Fail("audit-log", ptr(rec.LogIndex), rec.ID, err)
			continue
		}
		root, err := hex.DecodeString(s.pred.Snapshot.Root)
		if err != nil || len(root) != sha256.Size {
			na.r.Fail("audit-log", ptr(rec.LogIndex), rec.ID, fmt.Errorf("%w: snapshot root %q is not a SHA-256 hash", attest.ErrSchema, s.pred.Snapshot.Root))
			continue
		}
		s.root = root
		na.snapshotBytes(s, res.Statement)
		snaps = append(snaps, s)
	}
	if len(snaps) == 0 {
		return
	}
	slices.SortFunc(snaps, func(a, b *snapAtt) int { return cmpU64(a.index, b.index) })
	byWS := map[string][]*snapAtt{}
	var order []string
	for _, s := range snaps {
		if _, ok := byWS[s.pred.Workspace]; !ok {
			order = append(order, s.pred.Workspace)
		}
		byWS[s.pred.Workspace] = append(byWS[s.pred.Workspace], s)
	}
	for _, ws := range order {
		list := byWS[ws]
		for i := 1; i < len(list); i++ {
			na.consistent(ws, list[i-1], list[i])
		}
		var latest *snapAtt
		for _, s := range list {
			if s.ok {
				latest = s
			}
		}
		if latest != nil {
			na.boundary(ws, latest, all)
		}
	}
}

// snapshotBytes checks the AuditLogSnapshot record and fetches, verifies
// and reassembles the raw bytes it links, then recomputes the root.
func (na *nodeAudit) snapshotBytes(s *snapAtt, st *attest.Statement) {
	r := na.r
	fail := func(err error) { r.Fail("audit-log", ptr(s.index), s.id, err) }
	sc, err := cid.Decode(s.pred.Snapshot.CID)
	if err != nil {
		fail(fmt.Errorf("%w: snapshot cid: %v", attest.ErrSchema, err))
		return
	}
	var bytesCID cid.Cid
	var bytesSum []byte
	for _, sub := range st.Subject {
		if sub.Name != audit.AuditLogPath {
			continue
		}
		if bytesCID, err = cid.Decode(strings.TrimPrefix(sub.URI, "ipfs://")); err != nil {
			fail(fmt.Errorf("%w: audit log subject: %v", attest.ErrSchema, err))
			return
		}
		bytesSum, _ = hex.DecodeString(sub.Digest["sha256"])
	}
	if !bytesCID.Defined() || len(bytesSum) != sha256.Size {
		fail(fmt.Errorf("%w: the attestation names no %s subject with a sha256", attest.ErrSchema, audit.AuditLogPath))
		return
	}
	blk, err := na.get("/ipfs/" + sc.String() + "?format=raw")
	if err != nil {
		fail(err)
		return
	}
	if got, err := sc.Prefix().Sum(blk); err != nil || !got.Equals(sc) {
		fail(fmt.Errorf("%w: snapshot record %s", attest.ErrBlockMismatch, sc))
		return
	}
	var rec schemas.AuditLogSnapshot
	if err := schemas.Decode(blk, &rec); err != nil {
		fail(fmt.Errorf("%w: snapshot record %s: %v", ErrAuditRoot, sc, err))
		return
	}
	switch {
	case !rec.Bytes.Equals(bytesCID):
		fail(fmt.Errorf("%w: snapshot record links bytes %s, the attestation names %s", ErrAuditRoot, rec.Bytes, bytesCID))
		return
	case rec.Lines != s.pred.Snapshot.Size || !bytes.Equal(rec.Root, s.root) || rec.Workspace != s.pred.Workspace:
		fail(fmt.Errorf("%w: snapshot record (%d lines, root %x, workspace %q) disagrees with the attestation (%d lines, root %s, workspace %q)",
			ErrAuditRoot, rec.Lines, rec.Root, rec.Workspace, s.pred.Snapshot.Size, s.pred.Snapshot.Root, s.pred.Workspace))
		return
	}
	carBytes, err := na.get("/ipfs/" + bytesCID.String() + "?format=car")
	if err != nil {
		fail(err)
		return
	}
	if err := checkCARBlocks(carBytes); err != nil {
		fail(err)
		return
	}
	raw, err := audit.FileFromCAR(carBytes, bytesCID, bytesSum, maxAuditBytes)
	if err != nil {
		if errors.Is(err, audit.ErrNotInCAR) {
			fail(unavailable("audit log bytes %s: %v", bytesCID, err))
		} else {
			fail(fmt.Errorf("%w: audit log bytes %s: %v", ErrAuditRoot, bytesCID, err))
		}
		return
	}
	if int64(len(raw)) != rec.Size {
		fail(fmt.Errorf("%w: audit log bytes are %d bytes, the snapshot record says %d", ErrAuditRoot, len(raw), rec.Size))
		return
	}
	lines, pending := splitLines(raw)
	t := audit.NewTree()
	for _, l := range lines {
		t.Append(l)
	}
	s.raw, s.lines = raw, lines
	switch {
	case pending > 0:
		fail(fmt.Errorf("%w: audit log bytes end in %d bytes of an incomplete line", ErrAuditRoot, pending))
	case int64(len(lines)) != s.pred.Snapshot.Size:
		fail(fmt.Errorf("%w: the raw bytes hold %d lines, the attestation says %d", ErrAuditRoot, len(lines), s.pred.Snapshot.Size))
	case !bytes.Equal(t.Root(), s.root):
		fail(fmt.Errorf("%w: the %d raw lines hash to root %x, the attestation says %s", ErrAuditRoot, len(lines), t.Root(), s.pred.Snapshot.Root))
	default:
		s.ok = true
		r.Prove("audit log of %s at %d lines (snapshot %s): root %s recomputed from the raw bytes %s", s.pred.Workspace, len(lines), s.id, s.pred.Snapshot.Root, bytesCID)
	}
}

// checkCARBlocks checks that every block of a CAR hashes to its CID.
func checkCARBlocks(b []byte) error {
	// Read without go-car's own check, so that a mismatch is reported as
	// attest.ErrBlockMismatch naming the block.
	br, err := car.NewBlockReader(bytes.NewReader(b), car.WithTrustedCAR(true))
	if err != nil {
		return unavailable("car: %v", err)
	}
	for {
		blk, err := br.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return unavailable("car: %v", err)
		}
		if c, err := blk.Cid().Prefix().Sum(blk.RawData()); err != nil || !c.Equals(blk.Cid()) {
			return fmt.Errorf("%w: block %s", attest.ErrBlockMismatch, blk.Cid())
		}
	}
}

// splitLines splits b into its "\n"-terminated lines (without the newline)
// and returns the length of any unterminated rest.
func splitLines(b []byte) ([][]byte, int) {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return out, len(b)
		}
		out = append(out, b[:i:i])
		b = b[i+1:]
	}
	return out, 0
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// consistent checks that cur (later in the log) continues prev: the RFC
// 6962 consistency proof from prev's attested root to cur's, computed from
// cur's raw lines, verifies.
func (na *nodeAudit) consistent(ws string, prev, cur *snapAtt) {
	if cur.lines == nil || !cur.ok {
		return // cur's own failure is already reported
	}
	n, m := prev.pred.Snapshot.Size, cur.pred.Snapshot.Size
	e := &AppendOnlyError{Workspace: ws, Earlier: prev.id, EarlierLines: n, Later: cur.id, LaterLines: m}
	if n <= m {
		t := audit.NewTree()
		for _, l := range cur.lines[:n] {
			t.Append(l)
		}
		t2, err := audit.LoadTree(uint64(n), t.Hashes())
		if err == nil {
			for _, l := range cur.lines[n:] {
				t2.Append(l)
			}
			var prf [][]byte
			if prf, err = t2.ConsistencyProof(uint64(n)); err == nil {
				if err = audit.VerifyConsistency(uint64(n), uint64(m), prf, prev.root, cur.root); err == nil {
					na.r.Prove("audit log of %s: snapshot %s (%d lines) is consistent with the earlier %s (%d lines): consistency proof verified",
						ws, cur.id, m, prev.id, n)
					return
				}
				e.ProofMismatch = true
			}
		}
	}
	if prev.ok {
		e.Line, e.Kind = divergence(prev.lines, cur.lines)
	}
	na.r.failLine("audit-log", ptr(cur.index), cur.id, e.Line, e)
}

// divergence compares the attested lines old with the later lines cur and
// returns the first differing 1-based line and how they differ.
func divergence(old, cur [][]byte) (int64, error) {
	n := min(len(old), len(cur))
	i := 0
	for i < n && bytes.Equal(old[i], cur[i]) {
		i++
	}
	if i == n {
		if len(cur) < len(old) {
			return int64(len(cur) + 1), ErrAuditTruncated
		}
		return 0, nil
	}
	count := map[string]int{}
	for _, l := range old[i:] {
		count[string(l)]++
	}
	same := len(cur) >= len(old)
	for _, l := range cur[i:min(len(cur), len(old))] {
		if count[string(l)] == 0 {
			same = false
			break
		}
		count[string(l)]--
	}
	switch {
	case same:
		return int64(i + 1), ErrAuditReordered
	case i+1 < len(old) && bytes.Equal(old[i+1], cur[i]):
		return int64(i + 1), ErrAuditRemoved
	}
	return int64(i + 1), ErrAuditEdited
}
