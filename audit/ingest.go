package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	ufs "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
)

// Attester signs and publishes one attestation and returns its id. An
// *attest.Publisher with the node's signer satisfies it through
// PublisherAttester.
type Attester interface {
	Attest(ctx context.Context, predicateType string, subjects []attest.ResourceDescriptor, predicate any) (cid.Cid, error)
}

// PublisherAttester adapts an attest.Publisher and a signer to Attester.
type PublisherAttester struct {
	Publisher *attest.Publisher
	Signer    *attest.Signer
}

func (p PublisherAttester) Attest(ctx context.Context, pt string, subjects []attest.ResourceDescriptor, pred any) (cid.Cid, error) {
	r, err := p.Publisher.Attest(ctx, p.Signer, pt, subjects, pred)
	return r.ID, err
}

// ApprovalSource returns the verified approvals known now (see Approval).
type ApprovalSource func(ctx context.Context) ([]Approval, error)

// RunningConfigClaim is a running-config/v1 attestation reduced to what
// rule 5 needs: its id and the apply/v1 attestation ids it names.
type RunningConfigClaim struct {
	ID      string
	Applies []string
}

// RunningConfigSource returns the running-config/v1 attestations known now
// (verified by the caller: the node's own, or ones it trusts).
type RunningConfigSource func(ctx context.Context) ([]RunningConfigClaim, error)

// Ingester stores Agentix workspaces' audit logs and proposals and keeps
// their boundary state in the node's database.
type Ingester struct {
	Store *store.Store
	DB    *badger.DB
	// Policy is the boundary policy; nil is the built-in policy.
	Policy *Policy
	// Attester, if set, receives the audit-log/v1, proposal/v1 and apply/v1
	// attestations of each ingest.
	Attester Attester
	// Approvals, if set, supplies approvals for rule 2.
	Approvals ApprovalSource
	// RunningConfigs, if set, supplies running-config/v1 attestations for
	// rule 5. Each apply id they name is resolved through the apply/v1
	// attestations this Ingester published: ids of another workspace's
	// applies are left to that workspace, ids no workspace published are
	// violations.
	RunningConfigs RunningConfigSource
	// Now returns the time put in audit-log attestations (time.Now if nil).
	Now func() time.Time
}

// NewIngester returns an Ingester and registers its snapshots, patches and
// evidence with st as GC roots.
func NewIngester(st *store.Store, db *badger.DB) *Ingester {
	ing := &Ingester{Store: st, DB: db}
	st.RegisterRoots("audit", ing.Roots)
	return ing
}

// IngestOptions tune one ingest.
type IngestOptions struct {
	// Workspace names the workspace in the database and in records; empty
	// means the absolute path of the workspace directory.
	Workspace string
	// VerifyPrefix re-reads the whole already-ingested prefix and checks
	// its SHA-256, so an in-place edit that keeps every line length is also
	// caught. Without it an ingest checks the file size and the last
	// ingested line only (cost proportional to the new lines).
	VerifyPrefix bool
	// Progress, if set, is called while the new lines are read, with the
	// bytes read so far and the bytes to read, from the goroutine calling
	// Ingest.
	Progress func(done, total int64)
}

// progressEvery is how many lines go between two Progress calls.
const progressEvery = 4096

// IngestResult reports one ingest.
type IngestResult struct {
	Workspace string `json:"workspace"`
	// Unchanged is true when the file held no new complete line: nothing
	// was stored.
	Unchanged bool     `json:"unchanged"`
	Snapshot  cid.Cid  `json:"snapshot"`
	Previous  *cid.Cid `json:"previous,omitempty"`
	Bytes     cid.Cid  `json:"bytes"`
	Lines     int64    `json:"lines"`
	Size      int64    `json:"size"`
	NewLines  int64    `json:"newLines"`
	Root      string   `json:"root"`
	// Proof is the RFC 6962 consistency proof from the previous snapshot
	// (hex hashes); empty for a first snapshot.
	Proof        []string  `json:"consistencyProof,omitempty"`
	Pending      int       `json:"pendingBytes,omitempty"`
	Boundary     *Result   `json:"boundary"`
	Attestations []cid.Cid `json:"attestations,omitempty"`
	Evidence     *Evidence `json:"evidence,omitempty"`
}

// Tamper kinds: how a file failed to continue the accepted snapshot.
const (
	TamperTruncated = "truncated"
	TamperEdited    = "edited"
	TamperRemoved   = "removed"
	TamperReordered = "reordered"
)

// Evidence records a file version that is not a continuation of the
// accepted snapshot. Both versions stay stored.
type Evidence struct {
	Kind     string  `json:"kind"`
	Line     int64   `json:"line"` // first line that differs (1-based)
	Accepted cid.Cid `json:"accepted"`
	Found    cid.Cid `json:"found"` // snapshot of the refused version
	// AcceptedBytes and FoundBytes are the two versions' exact bytes
	// (UnixFS files: agentix-store cat prints them).
	AcceptedBytes cid.Cid `json:"acceptedBytes"`
	FoundBytes    cid.Cid `json:"foundBytes"`
	Time          string  `json:"time"`
}

// TamperError is returned by Ingest when the file does not continue the
// accepted snapshot. It matches ErrNotAppendOnly.
type TamperError struct {
	Workspace string
	Evidence  Evidence
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("audit log of %s: %v: line %d %s (accepted snapshot %s kept; this version stored as %s)",
		e.Workspace, ErrNotAppendOnly, e.Evidence.Line, e.Evidence.Kind, e.Evidence.Accepted, e.Evidence.Found)
}

func (e *TamperError) Is(target error) bool { return target == ErrNotAppendOnly }

// headState is the accepted snapshot of a workspace.
type headState struct {
	Seq         int64    `json:"seq"`
	Size        int64    `json:"size"`
	Lines       int64    `json:"lines"`
	LastLineOff int64    `json:"lastLineOffset"`
	LastLineSHA []byte   `json:"lastLineSha256"` // sha256 of [LastLineOff, Size)
	Hashes      [][]byte `json:"compactRange"`
	Root        []byte   `json:"root"`
	PrefixSHA   []byte   `json:"prefixSha256State"` // marshalled sha256 state over [0, Size)
	Snapshot    string   `json:"snapshot"`
	Bytes       string   `json:"bytes"`
	// Verdict digests the boundary verdict last attested for Snapshot
	// (verdictDigest); a re-ingest that reaches another verdict (new
	// approvals, running configs) attests the snapshot again.
	Verdict string `json:"verdict,omitempty"`
}

type historyEntry struct {
	Snapshot     string   `json:"snapshot"`
	Lines        int64    `json:"lines"`
	Size         int64    `json:"size"`
	Root         string   `json:"root"`
	Proof        []string `json:"consistencyProof,omitempty"`
	Attestations []string `json:"attestations,omitempty"`
}

func (ing *Ingester) now() time.Time {
	if ing.Now != nil {
		return ing.Now()
	}
	return time.Now()
}

func (ing *Ingester) loadHead(ws string) (*headState, error) {
	var h headState
	err := ing.DB.View(func(txn *badger.Txn) error {
		it, err := txn.Get(wsKey(ws, "head"))
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error { return json.Unmarshal(b, &h) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: load state of %s: %w", ws, err)
	}
	return &h, nil
}

// Ingest stores the new lines of root's .agentix/audit.jsonl and the patches
// they name, checks the boundary and attests the result.
//
// The first ingest stores the file's complete lines as one UnixFS file
// (the same CID as `ipfs add --cid-version=1` of those bytes). A later
// ingest first checks that the file continues the accepted snapshot: not
// shorter, and the last accepted line unchanged at its offset (and, with
// VerifyPrefix, the SHA-256 of the whole accepted prefix). It then reads
// only the bytes after the accepted size, stores them as a UnixFS file,
// and links a UnixFS file node over (previous bytes, new bytes) as the new
// snapshot's bytes: exact bytes, readable by any UnixFS reader, at a cost
// proportional to the new lines. The new snapshot carries the consistency
// proof from the previous one.
//
// A file that does not continue the accepted snapshot is compared line by
// line with the stored bytes; the refused version is stored as a snapshot
// of its own, recorded as Evidence, attested with a rule 4 violation, and
// Ingest returns a *TamperError naming the first differing line. The
// accepted snapshot stays the head.
func (ing *Ingester) Ingest(ctx context.Context, root string, o IngestOptions) (*IngestResult, error) {
	ws := o.Workspace
	if ws == "" {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, err
		}
		ws = abs
	}
	// One ingest of a workspace at a time per database, whoever runs it
	// (the CLI through the API, the daemon's follower).
	unlock := lockWorkspace(ing.DB, ws)
	defer unlock()
	// Every read of the workspace goes through wr and stays inside it,
	// symlinks included.
	wr, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	defer wr.Close()
	f, err := openAuditLog(wr)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head, err := ing.loadHead(ws)
	if err != nil {
		return nil, err
	}
	// Everything this ingest stores is held from GC until the head (or
	// the evidence record) that makes it reachable is written.
	hold := ing.Store.NewHold()
	defer hold.Release()
	if head != nil {
		ok, err := ing.continues(f, fi.Size(), head, o.VerifyPrefix)
		if err != nil {
			return nil, err
		}
		if !ok {
			return ing.refuse(ctx, hold, wr, ws, f, head)
		}
	}
	return ing.extend(ctx, hold, wr, ws, f, head, o.Progress)
}

// continues reports whether the file (of size size) extends the accepted
// snapshot h.
func (ing *Ingester) continues(f *os.File, size int64, h *headState, full bool) (bool, error) {
	if size < h.Size {
		return false, nil
	}
	if h.Size == 0 {
		return true, nil
	}
	// The last line may be long: hash it as it streams.
	tail := sha256.New()
	if _, err := io.Copy(tail, io.NewSectionReader(f, h.LastLineOff, h.Size-h.LastLineOff)); err != nil {
		return false, fmt.Errorf("audit log: %w", err)
	}
	if !bytes.Equal(tail.Sum(nil), h.LastLineSHA) {
		return false, nil
	}
	if full {
		hs := sha256.New()
		if _, err := io.Copy(hs, io.NewSectionReader(f, 0, h.Size)); err != nil {
			return false, fmt.Errorf("audit log: %w", err)
		}
		want, err := resumePrefix(h)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(hs.Sum(nil), want.Sum(nil)) {
			return false, nil
		}
	}
	return true, nil
}

// patchCache stores each patch named during one ingest once: all lines of
// one ingest see the bytes present at that moment.
type patchCache struct {
	ing   *Ingester
	ctx   context.Context
	root  *os.Root
	ws    string
	seen  map[string]PatchInfo
	store bool
	hold  *store.Hold // what is stored is held here (when store)
}

func (pc *patchCache) lookup(rel string) (PatchInfo, error) {
	if pi, ok := pc.seen[rel]; ok {
		return pi, nil
	}
	b, err := readPatch(pc.root, rel)
	if errors.Is(err, fs.ErrNotExist) {
		pc.seen[rel] = PatchInfo{}
		return PatchInfo{}, nil
	}
	if err != nil {
		return PatchInfo{}, err
	}
	sum := sha256.Sum256(b)
	pi := PatchInfo{Found: true, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	if pc.store {
		c, err := pc.ing.storePatch(pc.ctx, pc.hold, pc.ws, rel, b, sum[:])
		if err != nil {
			return PatchInfo{}, err
		}
		pi.CID = c.String()
	}
	pc.seen[rel] = pi
	return pi, nil
}

// storePatch stores patch bytes and their Patch record, held in h.
func (ing *Ingester) storePatch(ctx context.Context, h *store.Hold, ws, rel string, b, sum []byte) (cid.Cid, error) {
	fc, err := h.Add(ctx, bytes.NewReader(b), store.AddOptions{})
	if err != nil {
		return cid.Undef, fmt.Errorf("store patch %s: %w", rel, err)
	}
	files := []string{}
	if ch, err := ParseDiff(b); err == nil {
		files = FilesTouched(ch)
	}
	rec := &schemas.Patch{Bytes: fc, Sha256: sum, Size: int64(len(b)), Files: files, Workspace: ws, ProposalPath: rel}
	return ing.putRecord(ctx, h, rec)
}

// putRecord stores record r, held in h.
func (ing *Ingester) putRecord(ctx context.Context, h *store.Hold, r schemas.Record) (cid.Cid, error) {
	blk, err := schemas.EncodeBlock(r)
	if err != nil {
		return cid.Undef, err
	}
	if err := h.Put(ctx, blk); err != nil {
		return cid.Undef, err
	}
	return blk.Cid(), nil
}

// extend ingests the lines after h (all lines when h is nil); what it
// stores is held in hold. Its steps, each named below: scan the new lines
// and evaluate them (scanNew); store them and the snapshot that links them
// to the accepted bytes (storeSnapshot); judge the whole log and attest it;
// write the workspace state, then the new head and its history entry
// (writeHead). Nothing is accepted until the head is written.
func (ing *Ingester) extend(ctx context.Context, hold *store.Hold, root *os.Root, ws string, f *os.File, h *headState, progress func(done, total int64)) (*IngestResult, error) {
	state := newDBState(ing.DB, ws)
	pc := &patchCache{ing: ing, ctx: ctx, root: root, ws: ws, seen: map[string]PatchInfo{}, store: true, hold: hold}
	ev := NewEvaluator(ing.Policy, state, pc.lookup)
	sc, err := scanNew(ctx, f, h, ev, state, progress)
	if err != nil {
		return nil, err
	}
	res := &IngestResult{Workspace: ws, Pending: sc.pending}
	if sc.newLines == 0 && h != nil {
		return ing.reevaluate(ctx, ws, h, ev, state, res)
	}
	ss, err := ing.storeSnapshot(ctx, hold, ws, f, h, sc)
	if err != nil {
		return nil, err
	}
	proofHex, err := proveConsistency(h, sc.tree)
	if err != nil {
		return nil, err
	}
	res.Snapshot, res.Previous, res.Bytes, res.Lines, res.Size = ss.cid, ss.snap.Previous, ss.snap.Bytes, sc.lines, sc.end
	res.NewLines, res.Root, res.Proof = sc.newLines, hex.EncodeToString(sc.tree.Root()), proofHex

	in, err := ing.inputs(ctx, ws)
	if err != nil {
		return nil, err
	}
	if res.Boundary, err = ev.Result(sc.lines, in); err != nil {
		return nil, err
	}
	verdict, err := verdictDigest(res.Boundary)
	if err != nil {
		return nil, err
	}
	if ing.Attester != nil {
		todo, err := ing.unattestedApplies(state, res.Boundary, sc.applies)
		if err != nil {
			return nil, err
		}
		ids, err := ing.attest(ctx, ws, ss.cid, ss.snap, ss.bytesSHA, res.Boundary, sc.props, todo, state)
		if err != nil {
			return nil, err
		}
		res.Attestations = ids
	}
	if err := state.flush(); err != nil {
		return nil, fmt.Errorf("audit: write state: %w", err)
	}
	nh := headState{Size: sc.end, Lines: sc.lines, LastLineOff: ss.lastLineOff, LastLineSHA: ss.lastLineSHA,
		Hashes: sc.tree.Hashes(), Root: sc.tree.Root(), PrefixSHA: ss.prefixState, Snapshot: ss.cid.String(),
		Bytes: ss.snap.Bytes.String(), Verdict: verdict}
	if h != nil {
		nh.Seq = h.Seq + 1
	}
	he := historyEntry{Snapshot: nh.Snapshot, Lines: nh.Lines, Size: nh.Size, Root: res.Root, Proof: proofHex}
	for _, id := range res.Attestations {
		he.Attestations = append(he.Attestations, id.String())
	}
	if err := ing.writeHead(ws, nh, &he); err != nil {
		return nil, err
	}
	return res, nil
}

// scanned is what one pass over the lines after the accepted snapshot
// found.
type scanned struct {
	start, end int64 // the new complete lines are the bytes [start, end)
	lines      int64 // lines in the log, old and new
	newLines   int64
	pending    int   // bytes after the last complete line
	tree       *Tree // the tree over every line, old and new
	// props are the proposals saved by the new lines; applies are the new
	// lines that applied a patch.
	props   []ProposalRec
	applies []int64
}

// scanNew reads the complete lines of f after the accepted snapshot h (every
// line when h is nil), appends each to the tree resumed from h and adds it
// to ev. It collects the proposals the new lines saved (as recorded in
// state by ev) and the lines that applied a patch: those are what the
// ingest attests besides the log.
func scanNew(ctx context.Context, f io.ReaderAt, h *headState, ev *Evaluator, state *dbState, progress func(done, total int64)) (*scanned, error) {
	tree, err := resumeTree(h)
	if err != nil {
		return nil, err
	}
	sc := &scanned{tree: tree}
	var lines int64
	if h != nil {
		sc.start, lines = h.Size, h.Lines
	}
	r := NewReader(io.NewSectionReader(f, sc.start, 1<<62), lines+1, sc.start)
	var total int64
	if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok && progress != nil {
		if fi, err := st.Stat(); err == nil {
			total = fi.Size() - sc.start
		}
	}
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tree.AppendLeafHash(l.Leaf)
		if err := ev.Add(&l); err != nil {
			return nil, err
		}
		if l.Err == nil {
			switch e := &l.Entry; {
			case (e.Action == ActionControllerRun || e.Action == ActionWorktreeRun) && e.ProposalSaved != nil:
				if rel, ok := ResolvePath(*e.ProposalSaved); ok {
					if p, ok, _ := state.Proposal(rel); ok && p.Line == l.Number {
						sc.props = append(sc.props, p)
					}
				}
			case e.Action == ActionApply && e.Result == ResultApplied:
				sc.applies = append(sc.applies, l.Number)
			}
		}
		sc.newLines++
		if progress != nil && sc.newLines%progressEvery == 0 {
			progress(r.Offset()-sc.start, total)
		}
	}
	sc.end, sc.lines, sc.pending = r.Offset(), r.Lines(), int(r.PendingSize())
	if progress != nil {
		progress(sc.end-sc.start, total)
	}
	return sc, nil
}

// storedSnapshot is a snapshot record stored by storeSnapshot, with the
// hashes of its bytes the new head keeps.
type storedSnapshot struct {
	cid         cid.Cid
	snap        *schemas.AuditLogSnapshot
	bytesSHA    []byte // SHA-256 of the snapshot's bytes
	prefixState []byte // the marshalled SHA-256 state over those bytes
	lastLineOff int64
	lastLineSHA []byte
}

// storeSnapshot stores the new lines sc found, read a second time, and the
// snapshot record over the whole log: its bytes are the new lines' UnixFS
// file, concatenated after the accepted bytes when there are any (concat),
// and it links the accepted snapshot as its previous one. The prefix hash
// and the last line's hash come from that same second stream, and its lines
// must hash to the tree sc evaluated: what is stored is what was checked.
func (ing *Ingester) storeSnapshot(ctx context.Context, hold *store.Hold, ws string, f io.ReaderAt, h *headState, sc *scanned) (*storedSnapshot, error) {
	prefix, err := resumePrefix(h)
	if err != nil {
		return nil, err
	}
	stored, err := resumeTree(h)
	if err != nil {
		return nil, err
	}
	lh := newLineHasher(stored, sc.start)
	n := sc.end - sc.start
	segment, err := hold.Add(ctx, io.TeeReader(io.NewSectionReader(f, sc.start, n), io.MultiWriter(prefix, lh)), store.AddOptions{})
	if err != nil {
		return nil, fmt.Errorf("store audit log: %w", err)
	}
	if lh.completed != sc.newLines || !bytes.Equal(stored.Root(), sc.tree.Root()) {
		return nil, fmt.Errorf("audit log of %s changed while it was ingested (lines %d to %d read differently the second time); nothing accepted, ingest again",
			ws, sc.lines-sc.newLines+1, sc.lines)
	}
	snap := &schemas.AuditLogSnapshot{Workspace: ws, Size: sc.end, Lines: sc.lines, Root: sc.tree.Root(), Bytes: segment}
	if h != nil {
		prevBytes, err := cid.Decode(h.Bytes)
		if err != nil {
			return nil, fmt.Errorf("audit: accepted bytes of %s: %w", ws, err)
		}
		if snap.Bytes, err = ing.concat(ctx, hold, prevBytes, h.Size, segment, n); err != nil {
			return nil, err
		}
		prev, err := cid.Decode(h.Snapshot)
		if err != nil {
			return nil, fmt.Errorf("audit: accepted snapshot of %s: %w", ws, err)
		}
		snap.Previous = &prev
	}
	c, err := ing.putRecord(ctx, hold, snap)
	if err != nil {
		return nil, err
	}
	state, err := prefix.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("audit: prefix hash state: %w", err)
	}
	return &storedSnapshot{cid: c, snap: snap, bytesSHA: prefix.Sum(nil), prefixState: state,
		lastLineOff: lh.lastOff, lastLineSHA: lh.lastSHA}, nil
}

// proveConsistency returns the RFC 6962 consistency proof (hex hashes) from
// the accepted snapshot h to tree, verified against both roots before it is
// returned; a first snapshot (h nil) has none.
func proveConsistency(h *headState, tree *Tree) ([]string, error) {
	if h == nil {
		return nil, nil
	}
	prf, err := tree.ConsistencyProof(uint64(h.Lines))
	if err != nil {
		return nil, err
	}
	if err := VerifyConsistency(uint64(h.Lines), tree.Size(), prf, h.Root, tree.Root()); err != nil {
		return nil, fmt.Errorf("audit: internal error: consistency proof does not verify: %w", err)
	}
	var out []string
	for _, p := range prf {
		out = append(out, hex.EncodeToString(p))
	}
	return out, nil
}

// resumeTree returns the tree of the accepted snapshot h (the empty tree
// when h is nil), ready to take the lines after it.
func resumeTree(h *headState) (*Tree, error) {
	if h == nil {
		return NewTree(), nil
	}
	return LoadTree(uint64(h.Lines), h.Hashes)
}

// resumePrefix returns the SHA-256 state over the accepted snapshot h's
// bytes (a fresh hash when h is nil), ready to take the bytes after them.
func resumePrefix(h *headState) (hash.Hash, error) {
	hs := sha256.New()
	if h == nil {
		return hs, nil
	}
	if err := hs.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.PrefixSHA); err != nil {
		return nil, fmt.Errorf("audit: stored prefix hash state: %w", err)
	}
	return hs, nil
}

// writeHead makes nh the accepted snapshot of workspace ws: in one
// transaction it records he (when not nil) as history entry nh.Seq and nh
// as the head.
func (ing *Ingester) writeHead(ws string, nh headState, he *historyEntry) error {
	err := ing.DB.Update(func(txn *badger.Txn) error {
		if he != nil {
			if err := setJSON(txn, wsKey(ws, "s", seqKey(nh.Seq)), he); err != nil {
				return err
			}
		}
		return setJSON(txn, wsKey(ws, "head"), nh)
	})
	if err != nil {
		return fmt.Errorf("audit: write head of %s: %w", ws, err)
	}
	return nil
}

// setJSON sets key k to the JSON encoding of v in txn.
func setJSON(txn *badger.Txn, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", k, err)
	}
	return txn.Set(k, b)
}

// maxConcatLinks bounds the links of a concatenation node before a new
// level is started.
const maxConcatLinks = 174

// concat returns a UnixFS file whose bytes are those of a (aSize bytes)
// followed by those of b (bSize bytes). If a is a file node without inline
// data and with room for another link, its children are reused (each is a
// complete UnixFS subtree with its recorded size), so the DAG grows one
// level per 174 ingests rather than one per ingest. The node is held in hold.
func (ing *Ingester) concat(ctx context.Context, hold *store.Hold, a cid.Cid, aSize int64, b cid.Cid, bSize int64) (cid.Cid, error) {
	bs := ing.Store.Blockstore()
	type child struct {
		c     cid.Cid
		size  uint64 // file bytes
		tsize uint64 // cumulative DAG size
	}
	tsizeOf := func(c cid.Cid) (uint64, error) {
		blk, err := bs.Get(ctx, c)
		if err != nil {
			return 0, err
		}
		if c.Type() == cid.Raw {
			return uint64(len(blk.RawData())), nil
		}
		nd, err := dag.DecodeProtobuf(blk.RawData())
		if err != nil {
			return 0, err
		}
		return nd.Size()
	}
	var kids []child
	if a.Type() == cid.DagProtobuf {
		blk, err := bs.Get(ctx, a)
		if err != nil {
			return cid.Undef, err
		}
		nd, err := dag.DecodeProtobuf(blk.RawData())
		if err != nil {
			return cid.Undef, err
		}
		fsn, err := ufs.FSNodeFromBytes(nd.Data())
		if err == nil && fsn.Type() == ufs.TFile && len(fsn.Data()) == 0 && fsn.NumChildren() == len(nd.Links()) && len(nd.Links()) < maxConcatLinks {
			for i, l := range nd.Links() {
				kids = append(kids, child{l.Cid, fsn.BlockSize(i), l.Size})
			}
		}
	}
	if kids == nil {
		ts, err := tsizeOf(a)
		if err != nil {
			return cid.Undef, err
		}
		kids = []child{{a, uint64(aSize), ts}}
	}
	ts, err := tsizeOf(b)
	if err != nil {
		return cid.Undef, err
	}
	kids = append(kids, child{b, uint64(bSize), ts})
	fsn := ufs.NewFSNode(ufs.TFile)
	nd := new(dag.ProtoNode)
	for _, k := range kids {
		fsn.AddBlockSize(k.size)
		if err := nd.AddRawLink("", &ipld.Link{Cid: k.c, Size: k.tsize}); err != nil {
			return cid.Undef, err
		}
	}
	data, err := fsn.GetBytes()
	if err != nil {
		return cid.Undef, err
	}
	nd.SetData(data)
	if err := nd.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: 0x12, MhLength: -1}); err != nil {
		return cid.Undef, err
	}
	blk, err := blocks.NewBlockWithCid(nd.RawData(), nd.Cid())
	if err != nil {
		return cid.Undef, err
	}
	if err := hold.Put(ctx, blk); err != nil {
		return cid.Undef, err
	}
	return blk.Cid(), nil
}

// inputs gathers what rules 2 and 5 need beyond the lines.
func (ing *Ingester) inputs(ctx context.Context, ws string) (Inputs, error) {
	var in Inputs
	var err error
	if ing.Approvals != nil {
		if in.Approvals, err = ing.Approvals(ctx); err != nil {
			return in, fmt.Errorf("approvals: %w", err)
		}
	}
	if ing.RunningConfigs != nil {
		claims, err := ing.RunningConfigs(ctx)
		if err != nil {
			return in, fmt.Errorf("running configs: %w", err)
		}
		for _, c := range claims {
			rc := RunningConfig{ID: c.ID, PatchSHA256: map[int64]string{}}
			for _, id := range c.Applies {
				var ref applyRef
				ok, err := getJSON(ing.DB, applyIDKey(id), &ref)
				if err != nil {
					return in, err
				}
				switch {
				case !ok:
					rc.Unknown = append(rc.Unknown, id)
				case ref.Workspace == ws:
					rc.ApplyLines = append(rc.ApplyLines, ref.Line)
					rc.PatchSHA256[ref.Line] = ref.PatchSHA256
				}
			}
			if len(rc.ApplyLines)+len(rc.Unknown) > 0 {
				in.RunningConfigs = append(in.RunningConfigs, rc)
			}
		}
	}
	return in, nil
}

// reevaluate handles an ingest that found no new line: the verdict is
// computed again with the approvals and running configs known now, and when
// it differs from the one attested for the accepted snapshot (or applies
// have newly met the approval threshold), the snapshot is attested again
// with the new verdict, with apply/v1 for those applies.
func (ing *Ingester) reevaluate(ctx context.Context, ws string, h *headState, ev *Evaluator, state *dbState, res *IngestResult) (*IngestResult, error) {
	res.Unchanged = true
	res.Lines, res.Size, res.Root = h.Lines, h.Size, hex.EncodeToString(h.Root)
	var err error
	if res.Snapshot, err = cid.Decode(h.Snapshot); err != nil {
		return nil, err
	}
	if res.Bytes, err = cid.Decode(h.Bytes); err != nil {
		return nil, err
	}
	in, err := ing.inputs(ctx, ws)
	if err != nil {
		return nil, err
	}
	if res.Boundary, err = ev.Result(h.Lines, in); err != nil {
		return nil, err
	}
	if ing.Attester == nil {
		return res, nil
	}
	todo, err := ing.unattestedApplies(state, res.Boundary, nil)
	if err != nil {
		return nil, err
	}
	verdict, err := verdictDigest(res.Boundary)
	if err != nil {
		return nil, err
	}
	if verdict == h.Verdict && len(todo) == 0 {
		return res, nil
	}
	blk, err := ing.Store.Blockstore().Get(ctx, res.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("audit: accepted snapshot %s: %w", res.Snapshot, err)
	}
	var snap schemas.AuditLogSnapshot
	if err := schemas.DecodeBlock(blk, &snap); err != nil {
		return nil, fmt.Errorf("audit: accepted snapshot %s: %w", res.Snapshot, err)
	}
	prefix, err := resumePrefix(h)
	if err != nil {
		return nil, err
	}
	if res.Attestations, err = ing.attest(ctx, ws, res.Snapshot, &snap, prefix.Sum(nil), res.Boundary, nil, todo, state); err != nil {
		return nil, err
	}
	if err := state.flush(); err != nil {
		return nil, fmt.Errorf("audit: write state: %w", err)
	}
	nh := *h
	nh.Verdict = verdict
	if err := ing.writeHead(ws, nh, nil); err != nil {
		return nil, err
	}
	return res, nil
}

// unattestedApplies returns the apply lines to consider for apply/v1: the
// new ones, and in approver mode every apply that now meets the threshold
// and has no apply/v1 yet.
func (ing *Ingester) unattestedApplies(state *dbState, b *Result, newApply []int64) ([]int64, error) {
	out := slices.Clone(newApply)
	if b.SingleOperator {
		return out, nil
	}
	lines := make([]int64, 0, len(b.ApprovedBy))
	for l := range b.ApprovedBy {
		lines = append(lines, l)
	}
	slices.Sort(lines)
	for _, l := range lines {
		if slices.Contains(out, l) {
			continue
		}
		var id string
		ok, err := state.get(wsKey(state.ws, "i", seqKey(l)), &id)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// verdictDigest is the hex SHA-256 of a verdict's attested form.
func verdictDigest(b *Result) (string, error) {
	v, err := json.Marshal(struct {
		Passed     bool
		Violations []attest.Violation
	}{b.Passed, AttestationViolations(b.Violations)})
	if err != nil {
		return "", fmt.Errorf("audit: encode verdict: %w", err)
	}
	s := sha256.Sum256(v)
	return hex.EncodeToString(s[:]), nil
}

// wsLocks serialises ingests of one workspace into one database: two
// concurrent ingests would both extend the same head.
var wsLocks sync.Map // wsLockKey → *sync.Mutex

type wsLockKey struct {
	db *badger.DB
	ws string
}

func lockWorkspace(db *badger.DB, ws string) (unlock func()) {
	m, _ := wsLocks.LoadOrStore(wsLockKey{db, ws}, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
