package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/schemas"
)

// recordSubject is the subject naming a stored record: its CID and the
// SHA-256 of its block bytes.
func recordSubject(r schemas.Record, name string) (attest.ResourceDescriptor, error) {
	blk, err := schemas.EncodeBlock(r)
	if err != nil {
		return attest.ResourceDescriptor{}, err
	}
	s := sha256.Sum256(blk.RawData())
	return attest.Subject(blk.Cid(), s[:], name), nil
}

// AttestationViolations converts violations to the audit-log/v1 form.
// Lines stay 1-based audit line numbers.
func AttestationViolations(vs []Violation) []attest.Violation {
	out := make([]attest.Violation, 0, len(vs))
	for _, v := range vs {
		out = append(out, attest.Violation{Line: v.Line, Rule: v.Rule.String(), Message: v.Error()})
	}
	return out
}

// attestLog publishes the audit-log/v1 attestation of a snapshot. Its
// subjects are the snapshot record and the log bytes (UnixFS) with the
// SHA-256 of the bytes.
func (ing *Ingester) attestLog(ctx context.Context, ws string, sc cid.Cid, snap *schemas.AuditLogSnapshot, bytesSHA []byte, b *Result) (cid.Cid, error) {
	s1, err := recordSubject(snap, "AuditLogSnapshot")
	if err != nil {
		return cid.Undef, err
	}
	s2 := attest.Subject(snap.Bytes, bytesSHA, AuditLogPath)
	pred := attest.AuditLogPredicate{
		Workspace: ws,
		Snapshot:  attest.AuditLogSnapshot{CID: sc.String(), Size: snap.Lines, Root: hex.EncodeToString(snap.Root)},
		Boundary: attest.BoundaryResult{Policy: b.Policy, Passed: b.Passed, SingleOperator: b.SingleOperator,
			Violations: AttestationViolations(b.Violations)},
		Time: ing.now().UTC().Format(time.RFC3339),
	}
	id, err := ing.Attester.Attest(ctx, attest.PredicateAuditLog, []attest.ResourceDescriptor{s1, s2}, pred)
	if err != nil {
		return cid.Undef, fmt.Errorf("attest audit log snapshot %s: %w", sc, err)
	}
	return id, nil
}

// attest publishes audit-log/v1 for the snapshot, proposal/v1 for each new
// proposal line that qualifies (source_modified false, patch stored) and
// apply/v1 for each new apply line that held rules 1 and 2.
func (ing *Ingester) attest(ctx context.Context, ws string, sc cid.Cid, snap *schemas.AuditLogSnapshot, bytesSHA []byte,
	b *Result, props []ProposalRec, applies []int64, state *dbState) ([]cid.Cid, error) {
	id, err := ing.attestLog(ctx, ws, sc, snap, bytesSHA, b)
	if err != nil {
		return nil, err
	}
	ids := []cid.Cid{id}
	bad := map[int64]bool{}
	for _, v := range b.Violations {
		bad[v.Line] = true
	}
	propIDs := map[int64]cid.Cid{}
	for _, p := range props {
		if p.SourceModified || !p.Patch.Found || p.Patch.CID == "" {
			continue
		}
		subj, err := ing.patchSubject(ctx, p.Patch)
		if err != nil {
			return nil, err
		}
		pred := attest.ProposalPredicate{Workspace: ws, Patch: patchRef(p.Patch, p.Rel),
			AuditLine: attest.AuditLine{Snapshot: sc.String(), Line: p.Line - 1}, Action: p.Action, Mode: p.Mode, Goal: p.Goal}
		id, err := ing.Attester.Attest(ctx, attest.PredicateProposal, subj, pred)
		if err != nil {
			return nil, fmt.Errorf("attest proposal at line %d: %w", p.Line, err)
		}
		propIDs[p.Line] = id
		ids = append(ids, id)
	}
	if len(applies) == 0 {
		return ids, nil
	}
	for _, line := range applies {
		var a ApplyRec
		if ok, err := state.get(wsKey(state.ws, "a", seqKey(line)), &a); err != nil {
			return nil, err
		} else if !ok || !a.Rule1 || bad[a.Line] || !a.Patch.Found {
			continue
		}
		pred := attest.ApplyPredicate{Workspace: ws, Patch: patchRef(a.Patch, a.Rel),
			AuditLine: attest.AuditLine{Snapshot: sc.String(), Line: a.Line - 1}}
		if b.SingleOperator {
			pred.SingleOperator = true
		} else {
			appr := b.ApprovedBy[a.Line]
			if len(appr) == 0 {
				continue
			}
			pred.Approval = appr[0]
		}
		subj, err := ing.patchSubject(ctx, a.Patch)
		if err != nil {
			return nil, err
		}
		id, err := ing.Attester.Attest(ctx, attest.PredicateApply, subj, pred)
		if err != nil {
			return nil, fmt.Errorf("attest apply at line %d: %w", a.Line, err)
		}
		ids = append(ids, id)
		if err := state.put(wsKey(state.ws, "i", seqKey(a.Line)), id.String()); err != nil {
			return nil, err
		}
		if err := state.put(applyIDKey(id.String()), applyRef{Workspace: ws, Line: a.Line, PatchSHA256: a.Patch.SHA256}); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func patchRef(p PatchInfo, rel string) attest.PatchRef {
	return attest.PatchRef{CID: p.CID, SHA256: p.SHA256, Path: rel}
}

// patchSubject names a Patch record (block sha256) for attestation subjects.
func (ing *Ingester) patchSubject(ctx context.Context, p PatchInfo) ([]attest.ResourceDescriptor, error) {
	c, err := cid.Decode(p.CID)
	if err != nil {
		return nil, err
	}
	blk, err := ing.Store.Blockstore().Get(ctx, c)
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(blk.RawData())
	return []attest.ResourceDescriptor{attest.Subject(c, s[:], "Patch")}, nil
}
