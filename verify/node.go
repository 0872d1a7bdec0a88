package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/ipfs/go-cid"
	carbs "github.com/ipld/go-car/v2/blockstore"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
)

// ErrBypass: an apply names a patch no verified proposal attestation (a
// sandboxed controller run) produced, or names no approval where the policy
// requires one.
var ErrBypass = fmt.Errorf("apply bypassed the controller")

func init() {
	reasons = append([]struct {
		err  error
		code string
	}{{ErrBypass, "controller-bypass"}}, reasons...)
}

// NodeOptions configure CheckNode.
type NodeOptions struct {
	State   *State       // auditor state for the node's log (nil: none)
	Shallow bool         // check the closure's root record only
	HTTP    *http.Client // nil: http.DefaultClient
	TempDir string       // where configuration source states are rebuilt ("": os.TempDir)
	// Rebuild builds the latest link's toplevel with this auditor's Nix
	// and compares every path's NAR hash with the node's closure.
	Rebuild bool
}

type nodeAudit struct {
	ctx    context.Context
	base   string
	p      *attest.Policy
	o      NodeOptions
	r      *Report
	recs   map[string]attest.Record
	pb     *client.ProofBuilder
	size   uint64
	root   []byte
	origin string

	verified  map[string]*attest.Result // attestations checked so far
	patches   map[string]audit.PatchInfo
	rcID      string   // latest running-config attestation
	rcApplies []string // the apply/v1 ids it names

	sorted []attest.Record // every attestation the node lists, in log order

	closureNars map[string]string // store path → narHash of the verified closure
	patchByRef  map[string][]byte // checked patch bytes, by "<cid> <sha256>"
}

// CheckNode audits the whole claim of the node at base (its daemon's URL):
// its log (CheckLog with o.State), its latest running-config attestation,
// verified and proven included in the log, the closure it names (fetched as
// a CAR, every block hash-checked, every NAR re-hashed against its narHash,
// completeness; o.Shallow: the root record only), and the applies behind it,
// each with its proposal (a sandboxed run) and, when the policy has
// approvers, its threshold approval.
func CheckNode(ctx context.Context, base string, p *attest.Policy, o NodeOptions) *Report {
	base = strings.TrimSuffix(base, "/")
	if o.HTTP == nil {
		o.HTTP = http.DefaultClient
	}
	na := &nodeAudit{ctx: ctx, base: base, p: p, o: o, r: NewReport("node", base), recs: map[string]attest.Record{},
		verified: map[string]*attest.Result{}, patches: map[string]audit.PatchInfo{}}
	r := na.r
	u, _ := url.Parse(base + "/log/")
	src, _ := client.NewHTTPFetcher(u, o.HTTP)
	lr, lres := CheckLog(ctx, src, p, base+"/log/", LogOptions{State: o.State})
	r.Proven = append(r.Proven, lr.Proven...)
	r.Failures = append(r.Failures, lr.Failures...)
	r.Uncertain = append(r.Uncertain, lr.Uncertain...)
	if len(lr.Failures) > 0 || len(lr.Uncertain) > 0 {
		return r.Done()
	}
	na.size, na.root, na.origin = lres.Size, lres.Root, lres.Origin
	var err error
	if na.pb, err = client.NewProofBuilder(ctx, na.size, src.ReadTile); err != nil {
		r.Fail("inclusion", nil, "", unavailable("log tiles: %v", err))
		return r.Done()
	}
	var all []attest.Record
	if err := na.getJSON("/api/v1/attestations", &all); err != nil {
		r.Fail("attestations", nil, "", err)
		return r.Done()
	}
	var rc *attest.Record
	for i := range all {
		na.recs[all[i].ID] = all[i]
		isRC := all[i].PredicateType == attest.PredicateRunningConfig || all[i].PredicateType == attest.PredicateRunningConfigV2
		if isRC && all[i].LogIndex < na.size && (rc == nil || all[i].LogIndex > rc.LogIndex) {
			rc = &all[i]
		}
	}
	na.sorted = slices.Clone(all)
	slices.SortFunc(na.sorted, func(a, b attest.Record) int { return cmpU64(a.LogIndex, b.LogIndex) })
	if rc == nil {
		r.Fail("running-config", nil, "", unavailable("the node lists no running-config attestation in its log at size %d", na.size))
		return r.Done()
	}
	r.Details["runningConfig"] = rc.ID
	if rc.PredicateType == attest.PredicateRunningConfigV2 {
		na.runningConfigV2(rc)
		na.auditLogs(na.sorted)
		return r.Done()
	}
	res, ok := na.attestation(rc.ID, attest.PredicateRunningConfig)
	if !ok {
		return r.Done()
	}
	var rcp attest.RunningConfigPredicate
	if err := res.Statement.DecodePredicate(&rcp); err != nil {
		r.Fail("running-config", nil, rc.ID, err)
		return r.Done()
	}
	r.Details["closure"] = rcp.Closure
	na.rcID, na.rcApplies = rc.ID, rcp.Applies
	na.closure(rcp.Closure)
	for _, id := range rcp.Applies {
		na.apply(id)
	}
	r.Fail("configuration", ptr(rc.LogIndex), rc.ID, errf(ErrConfigUnproven, "running-config/v1 names the closure but no configuration source: which configuration the node runs is not proven"))
	na.auditLogs(na.sorted)
	return r.Done()
}

// runningConfigV2 checks the latest running-config/v2: its closure, and the
// configuration chain behind it (configChain), remembering the proven
// links in the auditor state.
func (na *nodeAudit) runningConfigV2(rc *attest.Record) {
	r := na.r
	l, ok := na.v2(rc.ID)
	if !ok {
		return
	}
	r.Details["closure"] = l.pred.Closure
	na.rcID = rc.ID
	na.closure(l.pred.Closure)
	c := l.pred.Configuration
	if c == nil {
		r.Fail("configuration", ptr(rc.LogIndex), rc.ID, errf(ErrConfigUnproven, "the node attests its closure but says its configuration is unproven: %s", l.pred.Unproven))
		return
	}
	na.rcApplies = c.Applies
	ls := &LogState{}
	if na.o.State != nil {
		var err error
		if ls, err = na.o.State.Load(na.origin); err != nil {
			r.Fail("state", nil, "", unavailable("%v", err))
			return
		}
	}
	before := len(r.Failures) + len(r.Uncertain)
	na.configChain(l, ls)
	if na.o.State != nil && len(r.Failures)+len(r.Uncertain) == before {
		if err := na.o.State.Save(ls); err != nil {
			r.Fail("state", nil, "", unavailable("%v", err))
		}
	}
}

func (na *nodeAudit) get(path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(na.ctx, http.MethodGet, na.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := na.o.HTTP.Do(req)
	if err != nil {
		return nil, unavailable("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, unavailable("GET %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, unavailable("GET %s: %v", path, err)
	}
	return b, nil
}

func (na *nodeAudit) getJSON(path string, v any) error {
	b, err := na.get(path)
	if err != nil {
		return err
	}
	// Strict, as every JSON from outside: exact member names, a repeated
	// member name or invalid UTF-8 refused, naming the member.
	if err := jsonv2.Unmarshal(b, v); err != nil {
		return unavailable("GET %s: %v", path, err)
	}
	return nil
}

// attestation fetches id, checks its bytes hash to it, verifies it with
// the policy, checks its predicate type and proves it is in the log.
func (na *nodeAudit) attestation(id, wantType string) (*attest.Result, bool) {
	r := na.r
	if res, ok := na.verified[id]; ok {
		if res == nil || res.PredicateType != wantType {
			return nil, false
		}
		return res, true
	}
	na.verified[id] = nil
	rec, ok := na.recs[id]
	if !ok {
		r.Fail("attestation", nil, id, unavailable("the node does not list attestation %s", id))
		return nil, false
	}
	b, err := na.get("/api/v1/attestations/" + id)
	if err != nil {
		r.Fail("attestation", ptr(rec.LogIndex), id, err)
		return nil, false
	}
	if got := attest.ID(b).String(); got != id {
		r.Fail("attestation", ptr(rec.LogIndex), id, errf(ErrIDMismatch, "served bytes have id %s", got))
		return nil, false
	}
	res, err := attest.VerifyEnvelopeBytes(b, na.p)
	if err != nil {
		r.Fail("envelope", ptr(rec.LogIndex), id, err)
		return nil, false
	}
	if res.PredicateType != wantType {
		r.Fail("envelope", ptr(rec.LogIndex), id, errf(ErrWrongPredicate, "%s, want %s", res.PredicateType, wantType))
		return nil, false
	}
	prf, err := na.pb.InclusionProof(na.ctx, rec.LogIndex)
	if err != nil {
		r.Fail("inclusion", ptr(rec.LogIndex), id, unavailable("inclusion proof: %v", err))
		return nil, false
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rec.LogIndex, na.size, rfc6962.DefaultHasher.HashLeaf(b), prf, na.root); err != nil {
		r.Fail("inclusion", ptr(rec.LogIndex), id, fmt.Errorf("%w: %v", attest.ErrInclusionProof, err))
		return nil, false
	}
	r.Prove("%s %s signed by %v, at log entry %d", short(wantType), id, res.Signers, rec.LogIndex)
	na.verified[id] = res
	return res, true
}

func short(t string) string { return strings.TrimPrefix(t, attest.PredicateTypePrefix) }

// apply checks one apply and the proposal and approval behind it.
func (na *nodeAudit) apply(id string) {
	res, ok := na.attestation(id, attest.PredicateApply)
	if !ok {
		return
	}
	var ap attest.ApplyPredicate
	if err := res.Statement.DecodePredicate(&ap); err != nil {
		na.r.Fail("apply", nil, id, err)
		return
	}
	rec := na.recs[id]
	proposed := false
	for _, pr := range na.recs {
		if pr.PredicateType != attest.PredicateProposal || pr.LogIndex >= na.size {
			continue
		}
		for _, s := range pr.Subjects {
			if s.URI != "ipfs://"+ap.Patch.CID {
				continue
			}
			pres, ok := na.attestation(pr.ID, attest.PredicateProposal)
			if !ok {
				continue
			}
			var pp attest.ProposalPredicate
			if pres.Statement.DecodePredicate(&pp) == nil && pp.Patch.CID == ap.Patch.CID && pp.Patch.SHA256 == ap.Patch.SHA256 {
				proposed = true
			}
		}
	}
	if !proposed {
		na.r.Fail("apply", ptr(rec.LogIndex), id, errf(ErrBypass, "patch %s has no verified proposal attestation (sandboxed controller run)", ap.Patch.CID))
	}
	switch {
	case ap.Approval != "":
		ares, ok := na.attestation(ap.Approval, attest.PredicateApproval)
		if !ok {
			return
		}
		var apr attest.ApprovalPredicate
		if err := ares.Statement.DecodePredicate(&apr); err == nil && apr.Patch.CID != ap.Patch.CID {
			na.r.Fail("apply", ptr(rec.LogIndex), id, errf(ErrBypass, "approval %s approves patch %s, not %s", ap.Approval, apr.Patch.CID, ap.Patch.CID))
		}
	case na.p.Approvers.Threshold > 0:
		na.r.Fail("apply", ptr(rec.LogIndex), id, errf(ErrBypass, "patch %s applied without an approval; the policy requires %d approver(s)", ap.Patch.CID, na.p.Approvers.Threshold))
	}
}

// closure fetches and checks the closure the running config names.
func (na *nodeAudit) closure(ref attest.ClosureRef) {
	r := na.r
	c, err := cid.Decode(ref.CID)
	if err != nil {
		r.Fail("closure", nil, ref.CID, fmt.Errorf("%w: closure cid: %v", attest.ErrSchema, err))
		return
	}
	if na.o.Shallow {
		b, err := na.get("/ipfs/" + c.String() + "?format=raw")
		if err != nil {
			r.Fail("closure", nil, ref.CID, err)
			return
		}
		if got, err := c.Prefix().Sum(b); err != nil || !got.Equals(c) {
			r.Fail("closure", nil, ref.CID, fmt.Errorf("%w: closure root record", attest.ErrBlockMismatch))
			return
		}
		r.Prove("closure root record %s hashes to its CID (--shallow: NARs not checked)", c)
		return
	}
	b, err := na.get("/ipfs/" + c.String() + "?format=car")
	if err != nil {
		r.Fail("closure", nil, ref.CID, err)
		return
	}
	// The CAR is read in place through go-car's read-only blockstore,
	// once every block is checked against its CID: nothing is written.
	if err := checkCARBlocks(b); err != nil {
		r.Fail("closure", nil, ref.CID, err)
		return
	}
	st, err := carbs.NewReadOnly(bytes.NewReader(b), nil)
	if err != nil {
		r.Fail("closure", nil, ref.CID, unavailable("closure CAR: %v", err))
		return
	}
	defer st.Close()
	vr, err := closure.Verify(na.ctx, st, c)
	if err != nil {
		r.Fail("closure", nil, ref.CID, err)
		return
	}
	na.closureNars = map[string]string{}
	for _, e := range vr.Entries {
		na.closureNars[e.Path] = e.NarHashString()
	}
	if vr.Root != ref.RootStorePath {
		r.Fail("closure", nil, ref.CID, fmt.Errorf("%w: closure root %s, running-config names %s", closure.ErrIncomplete, vr.Root, ref.RootStorePath))
		return
	}
	r.Prove("closure %s of %s: %d path(s), complete, every block and NAR hash checked (%d NAR bytes)", c, vr.Root, vr.Paths, vr.NarBytes)
}
