package verify

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/schemas"
)

// ErrPatchBytes: a Patch record, or the patch bytes it links, do not match
// the sha256 an attestation states for the patch.
var ErrPatchBytes = errors.New("patch bytes do not match the attested sha256")

func init() {
	reasons = append([]struct {
		err  error
		code string
	}{{ErrPatchBytes, "patch-hash-mismatch"}}, reasons...)
}

type lineRel struct {
	line int64
	rel  string
}

// boundary recomputes the safety boundary over the raw lines of snapshot s
// of workspace ws with the auditor's policy (audit.WithTrustPolicy over the
// trust policy: its boundary object and approvers). The patch bytes "stored
// then" of rule 1 are those the node attested in its proposal/v1 and
// apply/v1 attestations for that line, each re-checked against the Patch
// record and bytes the node serves; a line for which the node attested no
// patch has none (PatchInfo.Found false). Approvals are the node's
// approval/v1 envelopes whose approver signatures verify against the
// policy's approver keys; rule 5 uses the latest running-config
// attestation. The node's own verdict is never used.
func (na *nodeAudit) boundary(ws string, s *snapAtt, all []attest.Record) {
	r := na.r
	pol, err := audit.WithTrustPolicy(nil, na.p)
	if err != nil {
		r.Fail("boundary", ptr(s.index), s.id, fmt.Errorf("%w: %v", attest.ErrBadPolicy, err))
		return
	}
	patches := map[lineRel]audit.PatchInfo{}
	var claims []audit.ApplyClaim
	for _, rec := range all {
		if rec.LogIndex >= na.size {
			continue
		}
		switch rec.PredicateType {
		case attest.PredicateProposal:
			res, ok := na.attestation(rec.ID, attest.PredicateProposal)
			if !ok {
				continue
			}
			var p attest.ProposalPredicate
			if err := res.Statement.DecodePredicate(&p); err != nil || p.Workspace != ws {
				continue
			}
			patches[lineRel{p.AuditLine.Line + 1, p.Patch.Path}] = na.patchInfo(p.Patch, rec)
		case attest.PredicateApply:
			res, ok := na.attestation(rec.ID, attest.PredicateApply)
			if !ok {
				continue
			}
			var p attest.ApplyPredicate
			if err := res.Statement.DecodePredicate(&p); err != nil || p.Workspace != ws {
				continue
			}
			patches[lineRel{p.AuditLine.Line + 1, p.Patch.Path}] = na.patchInfo(p.Patch, rec)
			claims = append(claims, audit.ApplyClaim{ID: rec.ID, Line: p.AuditLine.Line + 1, PatchSHA256: p.Patch.SHA256})
		}
	}
	var cur int64
	lookup := func(rel string) (audit.PatchInfo, error) { return patches[lineRel{cur, rel}], nil }
	ev := audit.NewEvaluator(pol, audit.NewMemState(), lookup)
	rd := audit.NewReader(bytes.NewReader(s.raw), 1, 0)
	for {
		l, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Fail("boundary", ptr(s.index), s.id, fmt.Errorf("%w: %v", ErrAuditRoot, err))
			return
		}
		cur = l.Number
		if err := ev.Add(&l); err != nil {
			r.Fail("boundary", ptr(s.index), s.id, unavailable("evaluate line %d: %v", l.Number, err))
			return
		}
	}
	var in audit.Inputs
	if !pol.SingleOperator() {
		in.Approvals = na.approvals(all)
	}
	if na.rcID != "" {
		known := map[string]bool{}
		for _, c := range claims {
			known[c.ID] = true
		}
		var ids []string
		for _, id := range na.rcApplies {
			if known[id] {
				ids = append(ids, id)
			}
		}
		in.RunningConfigs = []audit.RunningConfig{audit.LinkRunningConfig(na.rcID, ids, claims)}
	}
	res, err := ev.Result(rd.Lines(), in)
	if err != nil {
		r.Fail("boundary", ptr(s.index), s.id, unavailable("evaluate: %v", err))
		return
	}
	mode := "single-operator (each human apply line stands as the approval)"
	if !res.SingleOperator {
		mode = fmt.Sprintf("%d-of-%d approvers", pol.Approvers.Threshold, len(pol.Approvers.Keys))
	}
	r.Details["boundary:"+ws] = map[string]any{"snapshot": s.id, "recomputed": res, "nodeVerdictPassed": s.pred.Boundary.Passed}
	for i := range res.Violations {
		v := res.Violations[i]
		r.failLine("boundary", ptr(s.index), s.id, v.Line, &v)
	}
	if res.Passed {
		r.Prove("safety boundary of %s held over %d lines (%d applies), recomputed by this auditor from the raw audit log of snapshot %s; policy %s, %s",
			ws, res.Lines, res.Applies, s.id, res.Policy, mode)
	}
}

// patchInfo is what the node attests about a patch, once its Patch record
// and bytes check out; PatchInfo{} (not found) when they do not.
func (na *nodeAudit) patchInfo(ref attest.PatchRef, rec attest.Record) audit.PatchInfo {
	if pi, ok := na.patches[ref.CID]; ok {
		if pi.Found && pi.SHA256 != ref.SHA256 {
			na.r.Fail("patch", ptr(rec.LogIndex), rec.ID, fmt.Errorf("%w: patch %s is attested with sha256 %s here and %s elsewhere", ErrPatchBytes, ref.CID, ref.SHA256, pi.SHA256))
			return audit.PatchInfo{}
		}
		return pi
	}
	size, err := na.checkPatch(ref)
	pi := audit.PatchInfo{}
	if err != nil {
		na.r.Fail("patch", ptr(rec.LogIndex), rec.ID, err)
	} else {
		pi = audit.PatchInfo{Found: true, SHA256: ref.SHA256, CID: ref.CID, Size: size}
	}
	na.patches[ref.CID] = pi
	return pi
}

// checkPatch fetches the Patch record ref.CID and the bytes it links,
// checking every block and the bytes' sha256 against ref.SHA256.
func (na *nodeAudit) checkPatch(ref attest.PatchRef) (int64, error) {
	b, err := na.patchBytes(ref)
	return int64(len(b)), err
}

// patchBytes is checkPatch returning the patch bytes; a patch is fetched
// and checked once per audit (the chain and the boundary both need it).
func (na *nodeAudit) patchBytes(ref attest.PatchRef) ([]byte, error) {
	k := ref.CID + " " + ref.SHA256
	if b, ok := na.patchByRef[k]; ok {
		return b, nil
	}
	b, err := na.fetchPatch(ref)
	if err == nil {
		if na.patchByRef == nil {
			na.patchByRef = map[string][]byte{}
		}
		na.patchByRef[k] = b
	}
	return b, err
}

func (na *nodeAudit) fetchPatch(ref attest.PatchRef) ([]byte, error) {
	c, err := cid.Decode(ref.CID)
	if err != nil {
		return nil, fmt.Errorf("%w: patch cid: %v", attest.ErrSchema, err)
	}
	want, err := hex.DecodeString(ref.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: patch sha256 %q", attest.ErrSchema, ref.SHA256)
	}
	blk, err := na.get("/ipfs/" + c.String() + "?format=raw")
	if err != nil {
		return nil, err
	}
	if got, err := c.Prefix().Sum(blk); err != nil || !got.Equals(c) {
		return nil, fmt.Errorf("%w: Patch record %s", attest.ErrBlockMismatch, c)
	}
	var p schemas.Patch
	if err := schemas.Decode(blk, &p); err != nil {
		return nil, fmt.Errorf("%w: %s is no Patch record: %v", ErrPatchBytes, c, err)
	}
	if !bytes.Equal(p.Sha256, want) {
		return nil, fmt.Errorf("%w: Patch record %s says sha256 %x, the attestation %s", ErrPatchBytes, c, p.Sha256, ref.SHA256)
	}
	carBytes, err := na.get("/ipfs/" + p.Bytes.String() + "?format=car")
	if err != nil {
		return nil, err
	}
	if err := checkCARBlocks(carBytes); err != nil {
		return nil, err
	}
	b, err := audit.FileFromCAR(carBytes, p.Bytes, want, audit.MaxPatchSize)
	if err != nil {
		if errors.Is(err, audit.ErrNotInCAR) {
			return nil, unavailable("patch bytes %s: %v", p.Bytes, err)
		}
		return nil, fmt.Errorf("%w: patch bytes %s: %v", ErrPatchBytes, p.Bytes, err)
	}
	return b, nil
}

// approvals returns the node's approval/v1 envelopes as approvals: each
// counts with the distinct approver keys (from the trust policy) whose
// signatures verify. Envelopes that do not verify count for nothing.
func (na *nodeAudit) approvals(all []attest.Record) []audit.Approval {
	var out []audit.Approval
	for _, rec := range all {
		if rec.PredicateType != attest.PredicateApproval {
			continue
		}
		b, err := na.get("/api/v1/attestations/" + rec.ID)
		if err != nil {
			na.r.Fail("approval", ptr(rec.LogIndex), rec.ID, err)
			continue
		}
		if got := attest.ID(b).String(); got != rec.ID {
			na.r.Fail("approval", ptr(rec.LogIndex), rec.ID, errf(ErrIDMismatch, "served bytes have id %s", got))
			continue
		}
		apps, errs := audit.VerifyApprovals([][]byte{b}, na.p.ApproverKeySet())
		if len(errs) > 0 {
			ig, _ := na.r.Details["ignoredApprovals"].(map[string]string)
			if ig == nil {
				ig = map[string]string{}
				na.r.Details["ignoredApprovals"] = ig
			}
			ig[rec.ID] = errs[0].Error()
			continue
		}
		for _, a := range apps {
			na.r.Prove("approval %s of patch sha256 %s signed by approver(s) %v", a.ID, a.PatchSHA256, a.Signers)
		}
		out = append(out, apps...)
	}
	return out
}
