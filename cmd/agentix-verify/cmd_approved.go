package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/schemas"
)

func init() { register(newApprovedCmd) }

// maxApprovalResponse bounds one answer of the node read by approved (the
// attestation list, an envelope, a Patch record block).
const maxApprovalResponse = 64 << 20

func newApprovedCmd() *cobra.Command {
	var nodeURL string
	var files []string
	c := &cobra.Command{
		Use:   "approved PATCH_FILE|PATCH_CID --policy TRUST [--node URL] [--approval FILE]...",
		Short: "The apply gate: exit 0 only when the patch's approvals meet the policy's threshold of distinct trusted approver keys",
		Long: `approved decides whether one patch may be applied: it exits 0 only when
the approval/v1 attestations of that patch carry valid signatures by at least
approvers.threshold distinct approver keys of the trust policy. Agentix's
human apply step, or a governance-gated auto-apply, runs it before applying.

The patch is PATCH_FILE (its bytes' sha256 must be the sha256 the approval
approves) or PATCH_CID: the CID of its Patch record (what "agentix-store
approve" signs), or, with --node, the UnixFS CID of its bytes (the Patch
record each approval names is fetched and its bytes CID compared). The report
says which matched.

Approvals come from --node URL (every approval/v1 attestation the node
lists, each envelope checked to hash to its id) and from --approval FILE
(an envelope or a bundle; repeatable). A signer is counted once however many
envelopes it signed. Signatures by keys the policy does not name as
approvers, and signatures that do not verify, are listed and not counted.

Exit status: 0 approved; 1 not approved (distinct trusted signers vs the
threshold named); 2 usage; 3 could not check (node unreachable, unreadable
file).`,
		Args: oneArg("PATCH_FILE|PATCH_CID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPolicy("approved")
			if err != nil {
				return err
			}
			if p.ApproverKeySet().Len() == 0 {
				return &usageError{Msg: "approved: the policy names no approvers (approvers.keys is empty): nothing can approve a patch"}
			}
			if nodeURL == "" && len(files) == 0 {
				return &usageError{Msg: "approved: give --node URL or --approval FILE (where the approvals are)"}
			}
			t, err := parsePatchTarget(args[0])
			if err != nil {
				return err
			}
			var ins []approvalInput
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				ins = append(ins, approvalInput{Source: f, Bytes: b})
			}
			var fetch blockFetcher
			if nodeURL != "" {
				nf := &approvalNode{ctx: cmd.Context(), base: strings.TrimSuffix(nodeURL, "/"), http: httpClient}
				got, err := nf.approvals()
				if err != nil {
					return err
				}
				ins = append(ins, got...)
				fetch = nf.block
			}
			r, err := checkApproved(t, p, ins, fetch)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.json {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				r.writeText(out)
			}
			if !r.Approved {
				return &verifyFailed{msg: r.summary()}
			}
			return nil
		},
	}
	policyFlag(c)
	c.Flags().StringVar(&nodeURL, "node", "", "node daemon URL to fetch the approval/v1 attestations from")
	c.Flags().StringArrayVar(&files, "approval", nil, "approval/v1 envelope or bundle file (repeatable)")
	return c
}

// patchTarget is the patch being gated: its sha256 (known for a file, or a
// CID whose multihash is the sha256 of raw bytes) and/or its CID.
type patchTarget struct {
	Arg    string  `json:"arg"`
	SHA256 string  `json:"sha256,omitempty"` // hex; "" while unknown
	CID    cid.Cid `json:"-"`
	// IsRecord: CID was fetched from the node and is a Patch record.
	IsRecord bool    `json:"isPatchRecord,omitempty"`
	Bytes    cid.Cid `json:"-"` // the record's bytes CID
}

// parsePatchTarget reads arg: an existing file is PATCH_FILE, else it must be a
// CID.
func parsePatchTarget(arg string) (*patchTarget, error) {
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		return &patchTarget{Arg: arg, SHA256: hex.EncodeToString(sum[:])}, nil
	}
	c, err := cid.Decode(arg)
	if err != nil {
		return nil, &usageError{Msg: fmt.Sprintf("approved: %q is neither a file nor a CID (%v)", arg, err)}
	}
	t := &patchTarget{Arg: arg, CID: c}
	// A raw-codec sha2-256 CID is the UnixFS CID of bytes stored as one
	// raw leaf: its digest is their sha256.
	if c.Type() == cid.Raw {
		if d, err := mh.Decode(c.Hash()); err == nil && d.Code == mh.SHA2_256 {
			t.SHA256 = hex.EncodeToString(d.Digest)
		}
	}
	return t, nil
}

// approvalInput is one envelope (or bundle) and where it came from.
type approvalInput struct {
	Source string // file name, or node:<id>
	Bytes  []byte
}

// blockFetcher returns the bytes of block c, checked to hash to c.
type blockFetcher func(c cid.Cid) ([]byte, error)

// approvedReport is what approved prints (--json: this structure).
type approvedReport struct {
	Patch     *patchTarget     `json:"patch"`
	Threshold int              `json:"threshold"`
	Approvers int              `json:"approvers"` // approver keys in the policy
	Signed    []string         `json:"signed"`    // distinct trusted keys over matching approvals
	Untrusted []string         `json:"untrusted"` // keys not approvers that signed a matching approval
	Invalid   []string         `json:"invalid"`   // approver keys whose signature did not verify
	Approved  bool             `json:"approved"`
	Approvals []approvalResult `json:"approvals"`
}

// approvalResult is one input's outcome.
type approvalResult struct {
	Source  string   `json:"source"`
	ID      string   `json:"id,omitempty"`
	Matched string   `json:"matched,omitempty"` // sha256, patch-record-cid, unixfs-cid
	Signers []string `json:"signers,omitempty"`
	Ignored string   `json:"ignored,omitempty"` // why it does not count
}

// errNotThisPatch marks an approval that approves some other patch.
var errNotThisPatch = errors.New("approves another patch")

// checkApproved evaluates the inputs against t and the policy's approvers.
// fetch (nil without a node) resolves Patch records for CID targets. An
// error is returned only when something could not be checked (a fetch).
func checkApproved(t *patchTarget, p *attest.Policy, ins []approvalInput, fetch blockFetcher) (*approvedReport, error) {
	ks := p.ApproverKeySet()
	r := &approvedReport{Patch: t, Threshold: p.Approvers.Threshold, Approvers: ks.Len(),
		Signed: []string{}, Untrusted: []string{}, Invalid: []string{}, Approvals: []approvalResult{}}
	if t.CID.Defined() && fetch != nil {
		b, err := fetch(t.CID)
		if err != nil && !errors.Is(err, errNotOnNode) {
			return nil, err
		}
		if err == nil && t.CID.Type() == cid.DagCBOR {
			blk, _ := blocks.NewBlockWithCid(b, t.CID)
			var rec schemas.Patch
			if err := schemas.DecodeBlock(blk, &rec); err == nil && len(rec.Sha256) == sha256.Size {
				t.IsRecord, t.Bytes = true, rec.Bytes
				t.SHA256 = hex.EncodeToString(rec.Sha256)
			}
		}
	}
	add := func(dst *[]string, ks []string) {
		for _, k := range ks {
			if !slices.Contains(*dst, k) {
				*dst = append(*dst, k)
			}
		}
	}
	for _, in := range ins {
		res := approvalResult{Source: in.Source}
		raw := in.Bytes
		if bu, err := attest.ParseBundle(raw); err == nil {
			raw = bu.Envelope
		}
		res.ID = attest.ID(raw).String()
		ap, err := readApproval(raw)
		if err == nil {
			// What the envelope claims decides whether it is about this
			// patch; its signatures decide whether it counts.
			res.Matched, err = t.matches(ap.pred, fetch)
		}
		if err != nil {
			if errors.Is(err, errFetch) {
				return nil, err
			}
			res.Ignored = err.Error()
			r.Approvals = append(r.Approvals, res)
			continue
		}
		signers, untrusted, invalid, err := ap.verify(ks)
		add(&r.Untrusted, untrusted)
		add(&r.Invalid, invalid)
		if err != nil {
			res.Matched = ""
			res.Ignored = err.Error()
			r.Approvals = append(r.Approvals, res)
			continue
		}
		res.Signers = signers
		add(&r.Signed, signers)
		r.Approvals = append(r.Approvals, res)
	}
	r.Approved = len(r.Signed) >= r.Threshold && r.Threshold >= 1
	return r, nil
}

// approval is an approval/v1 envelope read but not yet verified.
type approval struct {
	env  *attest.Envelope
	pred attest.ApprovalPredicate
}

// readApproval reads raw as an approval/v1 envelope (its payload as
// claimed, unverified). A statement whose subject digest is not the sha256
// it approves is refused.
func readApproval(raw []byte) (*approval, error) {
	env, err := attest.ParseEnvelope(raw)
	if err != nil {
		return nil, err
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", attest.ErrMalformedEnvelope, err)
	}
	st, err := attest.ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	if st.PredicateType != attest.PredicateApproval {
		return nil, fmt.Errorf("predicate type %s, want %s", st.PredicateType, attest.PredicateApproval)
	}
	ap := &approval{env: env}
	if err := st.DecodePredicate(&ap.pred); err != nil {
		return nil, err
	}
	found := false
	for _, s := range st.Subject {
		if d := s.Digest["sha256"]; d != "" {
			found = true
			if !strings.EqualFold(d, ap.pred.Patch.SHA256) {
				return nil, fmt.Errorf("subject %q has sha256 %s but the approval approves sha256 %s", s.Name, d, ap.pred.Patch.SHA256)
			}
		}
	}
	if !found {
		return nil, errors.New("no subject carries the patch's sha256")
	}
	return ap, nil
}

// verify checks the signatures with the approver keys: the keys that
// verified, keys the policy does not name as approvers, and approver keys
// whose signature does not verify. err is set when no approver key
// verified.
func (ap *approval) verify(ks *attest.KeySet) (signers, untrusted, invalid []string, err error) {
	signers, _, err = attest.VerifySignatures(ap.env, ks, 1)
	for _, s := range ap.env.Signatures {
		switch {
		case !ks.Has(s.KeyID):
			if k := cmpStr(s.KeyID, "(no keyid)"); !slices.Contains(untrusted, k) {
				untrusted = append(untrusted, k)
			}
		case !slices.Contains(signers, s.KeyID) && !slices.Contains(invalid, s.KeyID):
			invalid = append(invalid, s.KeyID)
		}
	}
	if err != nil {
		return nil, untrusted, invalid, err
	}
	return signers, untrusted, invalid, nil
}

// matches says how an approval's patch reference names t ("" never: an
// error says why it does not).
func (t *patchTarget) matches(pred attest.ApprovalPredicate, fetch blockFetcher) (string, error) {
	shaEq := t.SHA256 != "" && strings.EqualFold(pred.Patch.SHA256, t.SHA256)
	if !t.CID.Defined() {
		if shaEq {
			return "sha256", nil
		}
		return "", fmt.Errorf("%w: sha256 %s, the file's is %s", errNotThisPatch, pred.Patch.SHA256, t.SHA256)
	}
	pc, perr := cid.Decode(pred.Patch.CID)
	if perr == nil && pc.Equals(t.CID) {
		if t.SHA256 != "" && !shaEq {
			return "", fmt.Errorf("names patch %s but approves sha256 %s, and that patch's bytes have sha256 %s", t.CID, pred.Patch.SHA256, t.SHA256)
		}
		if t.IsRecord || t.CID.Type() == cid.DagCBOR {
			return "patch-record-cid", nil
		}
		return "unixfs-cid", nil
	}
	// PATCH_CID may be the UnixFS CID of the bytes: the Patch record the
	// approval names says what its bytes' CID is.
	if fetch != nil && perr == nil && pc.Type() == cid.DagCBOR {
		b, err := fetch(pc)
		if errors.Is(err, errNotOnNode) {
			return "", fmt.Errorf("%w: Patch record %s: %v", errNotThisPatch, pc, err)
		}
		if err != nil {
			return "", err
		}
		blk, _ := blocks.NewBlockWithCid(b, pc)
		var rec schemas.Patch
		if err := schemas.DecodeBlock(blk, &rec); err == nil && rec.Bytes.Equals(t.CID) {
			if !strings.EqualFold(hex.EncodeToString(rec.Sha256), pred.Patch.SHA256) {
				return "", fmt.Errorf("names Patch record %s (bytes %s) but approves sha256 %s, the record's is %x", pc, t.CID, pred.Patch.SHA256, rec.Sha256)
			}
			return "unixfs-cid", nil
		}
	}
	return "", fmt.Errorf("%w: %s (sha256 %s)", errNotThisPatch, cmpStr(pred.Patch.CID, "(no cid)"), pred.Patch.SHA256)
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (r *approvedReport) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "patch %s NOT approved: %d distinct trusted approver key(s) signed", r.Patch.Arg, len(r.Signed))
	if len(r.Signed) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(r.Signed, ", "))
	}
	fmt.Fprintf(&b, ", threshold %d of %d", r.Threshold, r.Approvers)
	if len(r.Untrusted) > 0 {
		fmt.Fprintf(&b, "; untrusted keys not counted: %s", strings.Join(r.Untrusted, ", "))
	}
	if len(r.Invalid) > 0 {
		fmt.Fprintf(&b, "; approver signatures that do not verify: %s", strings.Join(r.Invalid, ", "))
	}
	return b.String()
}

func (r *approvedReport) writeText(w io.Writer) {
	what := "sha256 " + r.Patch.SHA256
	if r.Patch.CID.Defined() {
		what = "CID " + r.Patch.CID.String()
		if r.Patch.SHA256 != "" {
			what += ", sha256 " + r.Patch.SHA256
		}
	}
	verdict := "NOT APPROVED"
	if r.Approved {
		verdict = "APPROVED"
	}
	fmt.Fprintf(w, "patch %s (%s): %s: %d of threshold %d distinct trusted approver keys\n", r.Patch.Arg, what, verdict, len(r.Signed), r.Threshold)
	for _, ap := range r.Approvals {
		if ap.Ignored != "" {
			fmt.Fprintf(w, "  ignored %s (%s): %s\n", ap.Source, ap.ID, ap.Ignored)
			continue
		}
		fmt.Fprintf(w, "  approval %s (%s): matched by %s, signed by %s\n", ap.Source, ap.ID, ap.Matched, strings.Join(ap.Signers, ", "))
	}
	if len(r.Untrusted) > 0 {
		fmt.Fprintf(w, "  untrusted keys (not counted): %s\n", strings.Join(r.Untrusted, ", "))
	}
	if len(r.Invalid) > 0 {
		fmt.Fprintf(w, "  approver signatures that do not verify (not counted): %s\n", strings.Join(r.Invalid, ", "))
	}
}

// errFetch marks a node answer approved could not get: exit 3.
var errFetch = errors.New("could not fetch from the node")

// errNotOnNode: the node answered 404 (it does not hold the block).
var errNotOnNode = errors.New("the node does not hold it")

// approvalNode reads approvals and blocks from a node's daemon.
type approvalNode struct {
	ctx  context.Context
	base string
	http *http.Client
}

func (n *approvalNode) get(path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(n.ctx, http.MethodGet, n.base+path, nil)
	if err != nil {
		return nil, &usageError{Msg: fmt.Sprintf("--node %q: %v", n.base, err)}
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", errFetch, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: GET %s: %s", errNotOnNode, path, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: %s", errFetch, path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxApprovalResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", errFetch, path, err)
	}
	if len(b) > maxApprovalResponse {
		return nil, fmt.Errorf("%w: GET %s: answer over %d bytes", errFetch, path, maxApprovalResponse)
	}
	return b, nil
}

// approvals lists the node's approval/v1 attestations and fetches each
// envelope, checking that its bytes hash to the id listed.
func (n *approvalNode) approvals() ([]approvalInput, error) {
	b, err := n.get("/api/v1/attestations?predicateType=" + url.QueryEscape(attest.PredicateApproval))
	if err != nil {
		return nil, err
	}
	recs, err := parseRecordList(b)
	if err != nil {
		return nil, fmt.Errorf("%w: GET /api/v1/attestations: %v", errFetch, err)
	}
	var out []approvalInput
	for _, rec := range recs {
		if rec.PredicateType != attest.PredicateApproval {
			continue
		}
		eb, err := n.get("/api/v1/attestations/" + url.PathEscape(rec.ID))
		if err != nil {
			return nil, err
		}
		if got := attest.ID(eb).String(); got != rec.ID {
			return nil, fmt.Errorf("%w: attestation %s: the node served bytes with id %s", errFetch, rec.ID, got)
		}
		out = append(out, approvalInput{Source: "node:" + rec.ID, Bytes: eb})
	}
	return out, nil
}

// parseRecordList decodes the node's attestation list strictly (exact
// member names, no repeated member).
func parseRecordList(b []byte) ([]attest.Record, error) {
	var recs []attest.Record
	if err := jsonv2.Unmarshal(bytes.TrimSpace(b), &recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// block fetches one block raw and checks it hashes to c.
func (n *approvalNode) block(c cid.Cid) ([]byte, error) {
	b, err := n.get("/ipfs/" + c.String() + "?format=raw")
	if err != nil {
		return nil, err
	}
	got, err := c.Prefix().Sum(b)
	if err != nil || !got.Equals(c) {
		return nil, fmt.Errorf("%w: block %s: the node served bytes that do not hash to it", errFetch, c)
	}
	return b, nil
}
