package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/cli"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/tlog"
	"github.com/ipfs/go-cid"
)

// This file holds the node operations beyond the store that the CLI's
// ingest, closure, config genesis, attestation, bundle and log commands
// need, shared by Local (the node in this process) and the daemon's routes,
// so both paths run the same code and answer the same values.

// IngestRequest asks for one ingest of a workspace's audit log. Workspace
// is a path on the node's machine.
type IngestRequest struct {
	Workspace string `json:"workspace"`
	// Name is the workspace's name in the store (default: its absolute
	// path).
	Name string `json:"name,omitempty"`
	// Verify re-reads the whole already-ingested prefix.
	Verify bool `json:"verify,omitempty"`
	// NoAttest stores and checks but publishes nothing.
	NoAttest bool `json:"noAttest,omitempty"`
	// Policy and TrustPolicy are the bytes of a boundary policy and a trust
	// policy file (empty: the built-in policy, the data dir's trust policy).
	Policy      []byte `json:"policy,omitempty"`
	TrustPolicy []byte `json:"trustPolicy,omitempty"`
}

// IngestView is an audit.IngestResult with CIDs as strings, as the CLI
// prints it and the API answers it.
type IngestView struct {
	Workspace    string        `json:"workspace"`
	Unchanged    bool          `json:"unchanged"`
	Snapshot     string        `json:"snapshot"`
	Previous     string        `json:"previous,omitempty"`
	Bytes        string        `json:"bytes"`
	Lines        int64         `json:"lines"`
	Size         int64         `json:"size"`
	NewLines     int64         `json:"newLines"`
	Root         string        `json:"root"`
	Proof        []string      `json:"consistencyProof,omitempty"`
	Pending      int           `json:"pendingBytes,omitempty"`
	Boundary     *audit.Result `json:"boundary"`
	Attestations []string      `json:"attestations,omitempty"`
	Evidence     *EvidenceView `json:"evidence,omitempty"`
}

// EvidenceView is an audit.Evidence with CIDs as strings.
type EvidenceView struct {
	Kind          string `json:"kind"`
	Line          int64  `json:"line"`
	Accepted      string `json:"accepted"`
	Found         string `json:"found"`
	AcceptedBytes string `json:"acceptedBytes"`
	FoundBytes    string `json:"foundBytes"`
	Time          string `json:"time"`
}

func cidStr(c cid.Cid) string {
	if !c.Defined() {
		return ""
	}
	return c.String()
}

// ViewIngest converts r.
func ViewIngest(r *audit.IngestResult) *IngestView {
	if r == nil {
		return nil
	}
	v := &IngestView{Workspace: r.Workspace, Unchanged: r.Unchanged, Snapshot: cidStr(r.Snapshot), Bytes: cidStr(r.Bytes),
		Lines: r.Lines, Size: r.Size, NewLines: r.NewLines, Root: r.Root, Proof: r.Proof, Pending: r.Pending, Boundary: r.Boundary}
	if r.Previous != nil {
		v.Previous = cidStr(*r.Previous)
	}
	for _, c := range r.Attestations {
		v.Attestations = append(v.Attestations, c.String())
	}
	if e := r.Evidence; e != nil {
		v.Evidence = &EvidenceView{Kind: e.Kind, Line: e.Line, Accepted: cidStr(e.Accepted), Found: cidStr(e.Found),
			AcceptedBytes: cidStr(e.AcceptedBytes), FoundBytes: cidStr(e.FoundBytes), Time: e.Time}
	}
	return v
}

// checkWorkspace refuses a path that is not an Agentix workspace (a usage
// error naming it).
func checkWorkspace(ws string) error {
	if _, err := os.Stat(filepath.Join(ws, filepath.FromSlash(audit.AuditLogPath))); err != nil {
		return cli.Usagef("ingest: %s is not an Agentix workspace: %v", ws, err)
	}
	return nil
}

// Ingest ingests req.Workspace into n once. A refused (tampered) version
// returns its report with an error matching audit.ErrNotAppendOnly.
func Ingest(ctx context.Context, n *node.Node, req IngestRequest, progress func(done, total int64)) (*IngestView, error) {
	if err := checkWorkspace(req.Workspace); err != nil {
		return nil, err
	}
	var pol *audit.Policy
	if len(req.Policy) > 0 {
		var err error
		if pol, err = audit.ParsePolicy(req.Policy); err != nil {
			return nil, cli.Usagef("boundary policy: %v", err)
		}
	}
	var tp *attest.Policy
	if len(req.TrustPolicy) > 0 {
		var err error
		if tp, err = attest.ParsePolicy(req.TrustPolicy); err != nil {
			return nil, cli.Usagef("trust policy: %v", err)
		}
	}
	ing, err := n.NewIngester(node.IngestSetup{Policy: pol, TrustPolicy: tp, NoAttest: req.NoAttest})
	if errors.Is(err, node.ErrApproversNeedTrustPolicy) {
		return nil, cli.Usagef("ingest: %v (--trust-policy)", err)
	}
	if err != nil {
		return nil, err
	}
	r, err := ing.Ingest(ctx, req.Workspace, audit.IngestOptions{Workspace: req.Name, VerifyPrefix: req.Verify, Progress: progress})
	if err != nil && !(r != nil && errors.Is(err, audit.ErrNotAppendOnly)) {
		return nil, err
	}
	return ViewIngest(r), err
}

// ClosureImportRequest asks to import the closure of StorePath from the
// node's local Nix, or from the binary cache From.
type ClosureImportRequest struct {
	StorePath string `json:"storePath"`
	From      string `json:"from,omitempty"`
	Jobs      int    `json:"jobs,omitempty"`
}

// ClosureImported answers a closure import.
type ClosureImported struct {
	Closure  string `json:"closure"`
	Root     string `json:"root"`
	Paths    int    `json:"paths"`
	NarBytes int64  `json:"narBytes"`
	Reused   int    `json:"reused"`
}

// ClosureVerified answers a closure verify or a closure CAR import.
type ClosureVerified struct {
	Closure  string `json:"closure"`
	Root     string `json:"root"`
	Paths    int    `json:"paths"`
	NarBytes int64  `json:"narBytes"`
}

// ClosureSummary is one closure the node holds.
type ClosureSummary struct {
	CID      string    `json:"cid"`
	Root     string    `json:"root"`
	Paths    int       `json:"paths"`
	NarBytes int64     `json:"narBytes"`
	Imported time.Time `json:"imported"`
}

// ClosureEntry is one store path of a closure.
type ClosureEntry struct {
	Path    string   `json:"path"`
	NarHash string   `json:"narHash"`
	NarSize int64    `json:"narSize"`
	Refs    []string `json:"references"`
	Info    string   `json:"info"`
	NAR     string   `json:"nar"`
}

func verified(r *closure.VerifyResult) *ClosureVerified {
	return &ClosureVerified{Closure: r.Closure.String(), Root: r.Root, Paths: r.Paths, NarBytes: r.NarBytes}
}

// ImportClosure imports a closure into n.
func ImportClosure(ctx context.Context, n *node.Node, req ClosureImportRequest, progress func(done, total int64)) (*ClosureImported, error) {
	if req.StorePath == "" {
		return nil, cli.Usagef("closure import: no store path")
	}
	var src closure.Source = &closure.LocalNix{}
	if req.From != "" {
		bc, err := closure.NewBinaryCache(ctx, req.From, nil)
		if err != nil {
			return nil, fmt.Errorf("--from %s: %w", req.From, err)
		}
		src = bc
	}
	res, err := closure.Import(ctx, n.Store, n.DB, src, req.StorePath, closure.ImportOptions{Jobs: req.Jobs, Progress: progress})
	if err != nil {
		return nil, err
	}
	return &ClosureImported{Closure: res.Closure.String(), Root: res.Root, Paths: res.Paths, NarBytes: res.NarBytes, Reused: res.Reused}, nil
}

// ImportClosureCAR imports a closure CAR (closure export's output).
func ImportClosureCAR(ctx context.Context, n *node.Node, r io.Reader) (*ClosureVerified, error) {
	res, err := closure.ImportCAR(ctx, n.Store, n.DB, r)
	if err != nil {
		return nil, err
	}
	return verified(res), nil
}

// Closures lists the closures n holds (all when root is empty).
func Closures(n *node.Node, root string) ([]ClosureSummary, error) {
	list, err := closure.List(n.DB)
	if err != nil {
		return nil, err
	}
	out := []ClosureSummary{}
	for _, s := range list {
		if root == "" || s.Root == root {
			out = append(out, ClosureSummary{CID: s.CID.String(), Root: s.Root, Paths: s.Paths, NarBytes: s.NarBytes, Imported: s.Imported})
		}
	}
	return out, nil
}

// ClosureEntries lists the store paths of the closure id.
func ClosureEntries(ctx context.Context, n *node.Node, id cid.Cid) ([]ClosureEntry, error) {
	_, entries, err := closure.Load(ctx, n.Store, id)
	if err != nil {
		return nil, err
	}
	out := make([]ClosureEntry, len(entries))
	for i, e := range entries {
		out[i] = ClosureEntry{Path: e.Path, NarHash: e.NarHashString(), NarSize: e.NarSize, Refs: e.References, Info: e.Info.String(), NAR: e.NAR.String()}
		if out[i].Refs == nil {
			out[i].Refs = []string{}
		}
	}
	return out, nil
}

// VerifyClosure re-checks the closure id.
func VerifyClosure(ctx context.Context, n *node.Node, id cid.Cid) (*ClosureVerified, error) {
	res, err := closure.Verify(ctx, n.Store, id)
	if err != nil {
		return nil, err
	}
	return verified(res), nil
}

// RunningRequest asks the node to attest that it runs a stored closure.
// Workspace is a path on the node's machine. Commit or Applies select the
// deprecated running-config/v1 (without Workspace).
type RunningRequest struct {
	Workspace  string   `json:"workspace,omitempty"`
	Attr       string   `json:"attr,omitempty"`
	Host       string   `json:"host,omitempty"`
	Generation int64    `json:"generation,omitempty"`
	Commit     string   `json:"commit,omitempty"`
	Applies    []string `json:"applies,omitempty"`
}

// RunningResult is what closure attest published.
type RunningResult struct {
	PublishResult
	Link     *attest.ConfigurationLink `json:"link,omitempty"`
	Unproven string                    `json:"unproven,omitempty"`
	Warnings []string                  `json:"warnings,omitempty"`
}

// AttestRunning publishes a running-config for the closure id signed by
// signer: v2 (node.AttestRunning), or the deprecated v1 with Commit or
// Applies.
func AttestRunning(ctx context.Context, n *node.Node, id cid.Cid, signer *attest.Signer, req RunningRequest) (*RunningResult, error) {
	if req.Workspace == "" && (req.Attr != "" || req.Host != "") {
		return nil, cli.Usagef("--attr and --host need --workspace")
	}
	if req.Commit != "" || len(req.Applies) > 0 {
		if req.Workspace != "" {
			return nil, cli.Usagef("--commit and --apply (running-config/v1) cannot be combined with --workspace")
		}
		env, err := closure.RunningConfig(ctx, n.Store, id, closure.RunningConfigOptions{
			ConfigCommit: strings.ToLower(req.Commit), Applies: req.Applies, Generation: req.Generation, Time: time.Now(),
		}, signer)
		if err != nil {
			return nil, err
		}
		p, err := n.Publisher().Publish(ctx, env)
		if err != nil {
			return nil, err
		}
		return &RunningResult{PublishResult: PublishResult{ID: p.ID.String(), LogIndex: p.LogIndex, Existing: p.Existing}}, nil
	}
	res, err := n.AttestRunning(ctx, id, signer, node.AttestOptions{Workspace: req.Workspace, Attr: req.Attr, Host: req.Host, Generation: req.Generation})
	if err != nil {
		return nil, err
	}
	return &RunningResult{PublishResult: PublishResult{ID: res.ID.String(), LogIndex: res.LogIndex, Existing: res.Existing},
		Link: res.Link, Unproven: res.Unproven, Warnings: res.Warnings}, nil
}

// nodeSigner loads n's attestation key.
func nodeSigner(n *node.Node) (*attest.Signer, error) {
	return attest.LoadSigner(filepath.Join(n.Dir, node.AttestKeyFile))
}

// Attestations searches n's attestation index.
func Attestations(n *node.Node, q attest.Query) ([]attest.Record, error) {
	rs, err := attest.NewIndex(n.DB).Search(q)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		rs = []attest.Record{}
	}
	return rs, nil
}

// Bundle builds the offline bundle (JSON) of the attestation id.
func Bundle(ctx context.Context, n *node.Node, id cid.Cid, withCAR bool) ([]byte, error) {
	if n.Log == nil {
		return nil, fmt.Errorf("%s: log not opened", n.Dir)
	}
	bb := &attest.BundleBuilder{Blocks: n.Store.Blockstore(), Index: attest.NewIndex(n.DB), Log: n.Log, DAGs: n.Store}
	bu, err := bb.Build(ctx, id, withCAR)
	if err != nil {
		return nil, err
	}
	return bu.Marshal()
}

// Checkpoint is the log's latest signed checkpoint.
type Checkpoint struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Hash   []byte `json:"hash"`
	Note   string `json:"note"`
}

// LogEntry is one entry of the log.
type LogEntry struct {
	Index uint64 `json:"index"`
	Entry []byte `json:"entry"`
}

// Inclusion is an inclusion proof.
type Inclusion struct {
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash string   `json:"leaf_hash"` // hex
	Root     []byte   `json:"root"`
	Proof    [][]byte `json:"proof"`
}

// InclusionRequest names the entry (Index, or LeafHash when set) and the
// tree size (0: the latest).
type InclusionRequest struct {
	Index    uint64
	LeafHash []byte
	Size     uint64
}

// Consistency is a consistency proof.
type Consistency struct {
	Old     uint64   `json:"old"`
	New     uint64   `json:"new"`
	OldRoot []byte   `json:"old_root"`
	NewRoot []byte   `json:"new_root"`
	Proof   [][]byte `json:"proof"`
}

func nodeLog(n *node.Node) (*tlog.Log, error) {
	if n.Log == nil {
		return nil, fmt.Errorf("%s: log not opened", n.Dir)
	}
	return n.Log, nil
}

// LogCheckpoint returns n's latest checkpoint.
func LogCheckpoint(ctx context.Context, n *node.Node) (*Checkpoint, error) {
	l, err := nodeLog(n)
	if err != nil {
		return nil, err
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, Note: string(cp.Note)}, nil
}

// LogEntries returns the entries with index in [from, to); to < 0 means the
// log's size.
func LogEntries(ctx context.Context, n *node.Node, from uint64, to int64) ([]LogEntry, error) {
	l, err := nodeLog(n)
	if err != nil {
		return nil, err
	}
	t := l.Size()
	if to >= 0 {
		t = uint64(to)
	}
	es, err := l.Entries(ctx, from, t)
	if err != nil {
		return nil, err
	}
	out := make([]LogEntry, len(es))
	for i, e := range es {
		out[i] = LogEntry{Index: from + uint64(i), Entry: e}
	}
	return out, nil
}

// LogInclusion returns the inclusion proof req asks for.
func LogInclusion(ctx context.Context, n *node.Node, req InclusionRequest) (*Inclusion, error) {
	l, err := nodeLog(n)
	if err != nil {
		return nil, err
	}
	size := req.Size
	if size == 0 {
		size = l.Size()
	}
	res := &Inclusion{Size: size}
	if req.LeafHash != nil {
		res.LeafHash = fmt.Sprintf("%x", req.LeafHash)
		if res.Index, res.Proof, err = l.InclusionProofByLeafHash(ctx, req.LeafHash, size); err != nil {
			return nil, err
		}
	} else {
		res.Index = req.Index
		e, err := l.Entry(ctx, req.Index)
		if err != nil {
			return nil, err
		}
		res.LeafHash = fmt.Sprintf("%x", tlog.LeafHash(e))
		if res.Proof, err = l.InclusionProof(ctx, req.Index, size); err != nil {
			return nil, err
		}
	}
	if res.Root, err = l.RootAt(ctx, size); err != nil {
		return nil, err
	}
	return res, nil
}

// LogConsistency returns the consistency proof between sizes old and nw.
func LogConsistency(ctx context.Context, n *node.Node, old, nw uint64) (*Consistency, error) {
	l, err := nodeLog(n)
	if err != nil {
		return nil, err
	}
	if old > nw {
		return nil, cli.Usagef("OLD %d > NEW %d", old, nw)
	}
	res := &Consistency{Old: old, New: nw}
	if res.Proof, err = l.ConsistencyProof(ctx, old, nw); err != nil {
		return nil, err
	}
	root := func(size uint64) ([]byte, error) {
		if size == 0 {
			return tlog.EmptyRoot(), nil
		}
		return l.RootAt(ctx, size)
	}
	if res.OldRoot, err = root(old); err != nil {
		return nil, err
	}
	if res.NewRoot, err = root(nw); err != nil {
		return nil, err
	}
	return res, nil
}

// Local implementations.

func (l Local) Ingest(ctx context.Context, req IngestRequest, progress func(done, total int64)) (*IngestView, error) {
	return Ingest(ctx, l.N, req, progress)
}

func (l Local) ClosureImport(ctx context.Context, req ClosureImportRequest, progress func(done, total int64)) (*ClosureImported, error) {
	return ImportClosure(ctx, l.N, req, progress)
}

func (l Local) ClosureImportCAR(ctx context.Context, r io.Reader) (*ClosureVerified, error) {
	return ImportClosureCAR(ctx, l.N, r)
}

func (l Local) Closures(ctx context.Context) ([]ClosureSummary, error) { return Closures(l.N, "") }

func (l Local) ClosureEntries(ctx context.Context, id cid.Cid) ([]ClosureEntry, error) {
	return ClosureEntries(ctx, l.N, id)
}

func (l Local) ClosureVerify(ctx context.Context, id cid.Cid) (*ClosureVerified, error) {
	return VerifyClosure(ctx, l.N, id)
}

func (l Local) ClosureExport(ctx context.Context, w io.Writer, id cid.Cid) error {
	return closure.ExportCAR(ctx, l.N.Store, id, w)
}

func (l Local) ClosureDiff(ctx context.Context, a, b cid.Cid) (*closure.DiffResult, error) {
	return closure.Diff(ctx, l.N.Store, a, b)
}

// AttestRunning signs with signer, or the node's key when signer is nil.
func (l Local) AttestRunning(ctx context.Context, id cid.Cid, signer *attest.Signer, req RunningRequest) (*RunningResult, error) {
	if signer == nil {
		var err error
		if signer, err = nodeSigner(l.N); err != nil {
			return nil, err
		}
	}
	return AttestRunning(ctx, l.N, id, signer, req)
}

func (l Local) RecordGenesis(ctx context.Context, ws string) (*node.Genesis, error) {
	return l.N.RecordGenesis(ctx, ws)
}

func (l Local) Attestations(ctx context.Context, q attest.Query) ([]attest.Record, error) {
	return Attestations(l.N, q)
}

func (l Local) Bundle(ctx context.Context, id cid.Cid, withCAR bool) ([]byte, error) {
	return Bundle(ctx, l.N, id, withCAR)
}

func (l Local) Checkpoint(ctx context.Context) (*Checkpoint, error) { return LogCheckpoint(ctx, l.N) }

func (l Local) LogEntries(ctx context.Context, from uint64, to int64) ([]LogEntry, error) {
	return LogEntries(ctx, l.N, from, to)
}

func (l Local) Inclusion(ctx context.Context, req InclusionRequest) (*Inclusion, error) {
	return LogInclusion(ctx, l.N, req)
}

func (l Local) Consistency(ctx context.Context, old, nw uint64) (*Consistency, error) {
	return LogConsistency(ctx, l.N, old, nw)
}

// Remote reports whether b reaches its node through a daemon (paths it is
// given are then paths on the daemon's machine).
func Remote(b Backend) bool {
	_, ok := b.(*Client)
	return ok
}
