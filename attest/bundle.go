package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
)

// BundleMediaType identifies the bundle format (version 1).
const BundleMediaType = "application/vnd.agentix.bundle.v1+json"

// MaxBundleSize bounds a bundle accepted by ParseBundle (256 MiB).
const MaxBundleSize = 256 << 20

// Bundle is everything needed to verify one attestation offline with only a
// trust policy. Its JSON form is one object:
//
//	{
//	  "mediaType": "application/vnd.agentix.bundle.v1+json",
//	  "id": "<attestation id: raw CIDv1 sha2-256 of the envelope bytes>",
//	  "envelope": "<base64 of the exact envelope bytes>",
//	  "logIndex": <index of the envelope in the log>,
//	  "inclusionProof": ["<base64 hash>", ...],
//	  "checkpoint": "<C2SP signed-note checkpoint, with cosignatures>",
//	  "car": "<base64 CARv1>"   (optional)
//	}
//
// The envelope is carried as base64 so its bytes, and with them its id and
// its log leaf hash SHA-256(0x00 || envelope), survive any JSON tooling. The
// inclusion proof is an RFC 6962 audit path from leaf logIndex to the root
// of the checkpoint's tree. The optional CAR has the attestation id as its
// first root and the subjects' CIDs as further roots, and holds the envelope
// block and the subjects' DAGs.
type Bundle struct {
	MediaType      string   `json:"mediaType"`
	ID             string   `json:"id"`
	Envelope       []byte   `json:"envelope"`
	LogIndex       uint64   `json:"logIndex"`
	InclusionProof [][]byte `json:"inclusionProof"`
	Checkpoint     string   `json:"checkpoint"`
	CAR            []byte   `json:"car,omitempty"`
}

// ParseBundle decodes a bundle strictly (unknown fields, with member names
// matched exactly, repeated member names, invalid UTF-8, trailing data,
// wrong media type, oversized input, a proof hash that is not 32 bytes, an
// id that is not a CID: all ErrBadBundle, naming the member). It verifies
// nothing else.
func ParseBundle(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadBundle, len(b), MaxBundleSize)
	}
	var bu Bundle
	if err := decodeStrict(b, &bu, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBundle, err)
	}
	if bu.MediaType != BundleMediaType {
		return nil, fmt.Errorf("%w: mediaType %q, want %q", ErrBadBundle, bu.MediaType, BundleMediaType)
	}
	if _, err := cid.Decode(bu.ID); err != nil {
		return nil, fmt.Errorf("%w: id %q: %v", ErrBadBundle, bu.ID, err)
	}
	if len(bu.Envelope) == 0 {
		return nil, fmt.Errorf("%w: no envelope", ErrBadBundle)
	}
	if bu.Checkpoint == "" {
		return nil, fmt.Errorf("%w: no checkpoint", ErrBadBundle)
	}
	for i, h := range bu.InclusionProof {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return nil, fmt.Errorf("%w: inclusionProof[%d] has %d bytes, want %d", ErrBadBundle, i, len(h), rfc6962.DefaultHasher.Size())
		}
	}
	return &bu, nil
}

// Marshal encodes the bundle as indented JSON.
func (bu *Bundle) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(bu, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// BlockGetter reads blocks (the node's block store satisfies it).
type BlockGetter interface {
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// LogReader is the part of the node's log a bundle is built from
// (*log.Log satisfies it).
type LogReader interface {
	Checkpoint(ctx context.Context) (tlog.SignedCheckpoint, error)
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
}

// CARExporter writes the DAG under a root as a CAR (*store.Store
// satisfies it).
type CARExporter interface {
	ExportCAR(ctx context.Context, w io.Writer, root cid.Cid, o store.ExportOptions) error
}

// BundleBuilder assembles bundles from the node's parts.
type BundleBuilder struct {
	Blocks BlockGetter
	Index  *Index
	Log    LogReader
	// DAGs, when set, lets Build include the subjects' DAGs in a CAR.
	DAGs CARExporter
}

// Build returns the bundle of attestation id against the log's current
// checkpoint. With withCAR, the bundle carries a CAR of the envelope block
// and every subject DAG (Build fails if a subject DAG is incomplete).
func (bb *BundleBuilder) Build(ctx context.Context, id cid.Cid, withCAR bool) (*Bundle, error) {
	rec, err := bb.Index.Get(id)
	if err != nil {
		return nil, err
	}
	blk, err := bb.Blocks.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("attestation %s: %w", id, err)
	}
	cp, err := bb.Log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if rec.LogIndex >= cp.Size {
		return nil, fmt.Errorf("attestation %s at log index %d is not yet in checkpoint of size %d", id, rec.LogIndex, cp.Size)
	}
	pr, err := bb.Log.InclusionProof(ctx, rec.LogIndex, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof for %s: %w", id, err)
	}
	bu := &Bundle{
		MediaType:      BundleMediaType,
		ID:             id.String(),
		Envelope:       blk.RawData(),
		LogIndex:       rec.LogIndex,
		InclusionProof: pr,
		Checkpoint:     string(cp.Note),
	}
	if withCAR {
		if bu.CAR, err = bb.buildCAR(ctx, blk, rec); err != nil {
			return nil, err
		}
	}
	return bu, nil
}

func (bb *BundleBuilder) buildCAR(ctx context.Context, env blocks.Block, rec Record) ([]byte, error) {
	roots := []cid.Cid{env.Cid()}
	for _, s := range rec.Subjects {
		if c, ok := s.CID(); ok {
			roots = append(roots, c)
		}
	}
	var out bytes.Buffer
	w, err := storage.NewWritable(&out, roots, car.WriteAsCarV1(true), car.AllowDuplicatePuts(false))
	if err != nil {
		return nil, err
	}
	if err := w.Put(ctx, env.Cid().KeyString(), env.RawData()); err != nil {
		return nil, err
	}
	if bb.DAGs == nil {
		return nil, fmt.Errorf("bundle CAR: no DAG exporter configured")
	}
	for _, root := range roots[1:] {
		var dag bytes.Buffer
		if err := bb.DAGs.ExportCAR(ctx, &dag, root, store.ExportOptions{}); err != nil {
			return nil, fmt.Errorf("bundle CAR: subject %s: %w", root, err)
		}
		br, err := car.NewBlockReader(&dag)
		if err != nil {
			return nil, err
		}
		for {
			b, err := br.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if err := w.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
				return nil, err
			}
		}
	}
	if err := w.Finalize(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// BundleResult is what VerifyBundle established.
type BundleResult struct {
	*Result
	ID         cid.Cid
	LogIndex   uint64
	Checkpoint flog.Checkpoint
	// Witnesses are the names of the distinct trusted witnesses whose
	// cosignatures verify.
	Witnesses []string
	// Blocks is the number of blocks in the CAR (all hash-checked), and
	// SubjectsInCAR the subject CIDs whose root block it holds.
	Blocks        int
	SubjectsInCAR []cid.Cid
}

// VerifyBundle verifies a bundle offline against a trust policy:
//
//  1. the bundle parses (ErrBadBundle) and its id is the CID of its
//     envelope bytes (ErrBadBundle);
//  2. the envelope verifies (VerifyEnvelope, with its errors);
//  3. the checkpoint names a log of the policy, is signed by that log's
//     key and is well formed (ErrCheckpoint);
//  4. at least the policy's quorum of distinct trusted witnesses cosigned
//     it (ErrWitnessQuorum);
//  5. the inclusion proof proves leaf SHA-256(0x00 || envelope) at logIndex
//     in the checkpoint's tree (ErrInclusionProof);
//  6. if a CAR is present, every block's bytes match its CID and the
//     envelope block is the envelope (ErrBadBundle).
func VerifyBundle(b []byte, p *Policy) (*BundleResult, error) {
	bu, err := ParseBundle(b)
	if err != nil {
		return nil, err
	}
	id := ID(bu.Envelope)
	if id.String() != bu.ID {
		return nil, fmt.Errorf("%w: id %s is not the CID of the envelope (%s)", ErrBadBundle, bu.ID, id)
	}
	res, err := VerifyEnvelopeBytes(bu.Envelope, p)
	if err != nil {
		return nil, err
	}
	cp, witnesses, err := p.VerifyCheckpoint([]byte(bu.Checkpoint))
	if err != nil {
		return nil, err
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(bu.Envelope)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, bu.LogIndex, cp.Size, leaf, bu.InclusionProof, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w: entry %d in tree of size %d of %s: %v", ErrInclusionProof, bu.LogIndex, cp.Size, cp.Origin, err)
	}
	out := &BundleResult{Result: res, ID: id, LogIndex: bu.LogIndex, Checkpoint: *cp, Witnesses: witnesses}
	if len(bu.CAR) > 0 {
		if err := verifyBundleCAR(bu, res, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func verifyBundleCAR(bu *Bundle, res *Result, out *BundleResult) error {
	// The CAR reader is told to trust the blocks so that the hash check
	// below, with its own error, is the one that runs.
	br, err := car.NewBlockReader(bytes.NewReader(bu.CAR), car.WithTrustedCAR(true))
	if err != nil {
		return fmt.Errorf("%w: car: %v", ErrBadBundle, err)
	}
	if len(br.Roots) == 0 || !br.Roots[0].Equals(out.ID) {
		return fmt.Errorf("%w: car: first root is not the attestation id", ErrBadBundle)
	}
	have := map[cid.Cid]bool{}
	for {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: car: %v", ErrBadBundle, err)
		}
		c, err := b.Cid().Prefix().Sum(b.RawData())
		if err != nil || !c.Equals(b.Cid()) {
			return fmt.Errorf("%w: car: %w: %s", ErrBadBundle, ErrBlockMismatch, b.Cid())
		}
		if c.Equals(out.ID) && !bytes.Equal(b.RawData(), bu.Envelope) {
			return fmt.Errorf("%w: car: envelope block differs", ErrBadBundle)
		}
		have[c] = true
		out.Blocks++
	}
	for _, s := range res.Statement.Subject {
		if c, ok := s.CID(); ok && have[c] {
			out.SubjectsInCAR = append(out.SubjectsInCAR, c)
		}
	}
	return nil
}

// VerifyCheckpoint checks a signed checkpoint note against the policy: its
// origin is one of the policy's logs, the log's key signed it, and at least
// Witnesses.Quorum distinct trusted witnesses cosigned it. It returns the
// checkpoint and the names of the witnesses that cosigned.
func (p *Policy) VerifyCheckpoint(noteBytes []byte) (*flog.Checkpoint, []string, error) {
	origin, _, _ := strings.Cut(string(noteBytes), "\n")
	lv, ok := p.logs[origin]
	if !ok {
		return nil, nil, fmt.Errorf("%w: log %q is not in the trust policy", ErrCheckpoint, origin)
	}
	cp, _, n, err := flog.ParseCheckpoint(noteBytes, origin, lv, p.witnesses...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, origin, err)
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, nil, fmt.Errorf("%w: %s: root hash of %d bytes", ErrCheckpoint, origin, len(cp.Hash))
	}
	var names []string
	seen := map[string]bool{}
	for _, s := range n.Sigs {
		for _, w := range p.witnesses {
			id := fmt.Sprintf("%s+%08x", w.Name(), w.KeyHash())
			if s.Name == w.Name() && s.Hash == w.KeyHash() && !seen[id] {
				seen[id] = true
				names = append(names, w.Name())
			}
		}
	}
	if len(names) < p.Witnesses.Quorum {
		return nil, nil, fmt.Errorf("%w: %s at size %d: %d of %d required witness cosignatures (%s)", ErrWitnessQuorum, origin, cp.Size, len(names), p.Witnesses.Quorum, strings.Join(names, ", "))
	}
	return cp, names, nil
}
