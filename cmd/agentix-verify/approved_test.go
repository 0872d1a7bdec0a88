package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/agentix/agentix-store/internal/clitest"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/daemon"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
)

// approvers is a set of generated keys, a policy trusting the first n of
// them as approvers with a threshold, and helpers to sign approvals.
type approverKit struct {
	t      testing.TB
	keys   []*attest.Signer
	policy *attest.Policy
	pjson  []byte
}

func newApproverKit(t testing.TB, total, trusted, threshold int) *approverKit {
	t.Helper()
	k := &approverKit{t: t}
	var kp []attest.KeyPolicy
	for i := 0; i < total; i++ {
		priv, _, err := attest.GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		s, err := attest.ParsePrivateKeyPEM(priv)
		if err != nil {
			t.Fatal(err)
		}
		k.keys = append(k.keys, s)
		if i < trusted {
			kp = append(kp, attest.KeyPolicyFor("approver", s.Verifier()))
		}
	}
	p := &attest.Policy{Version: attest.PolicyVersion, Approvers: attest.ApproverPolicy{Threshold: threshold, Keys: kp}}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if k.policy, err = attest.ParsePolicy(b); err != nil {
		t.Fatal(err)
	}
	k.pjson = b
	return k
}

// approval signs an approval/v1 of (patchCID, sum) by the keys named.
func (k *approverKit) approval(patchCID cid.Cid, sum []byte, signers ...int) []byte {
	k.t.Helper()
	return k.approvalSHA(patchCID, sum, hex.EncodeToString(sum), signers...)
}

// approvalSHA is approval with the predicate's sha256 given separately
// from the subject digest.
func (k *approverKit) approvalSHA(patchCID cid.Cid, sum []byte, predSHA string, signers ...int) []byte {
	k.t.Helper()
	rd := attest.Subject(patchCID, sum, "")
	_, payload, err := attest.NewStatement(attest.PredicateApproval, []attest.ResourceDescriptor{rd},
		attest.ApprovalPredicate{Patch: attest.PatchRef{CID: patchCID.String(), SHA256: predSHA}})
	if err != nil {
		k.t.Fatal(err)
	}
	var ss []*attest.Signer
	for _, i := range signers {
		ss = append(ss, k.keys[i])
	}
	env, err := attest.SignEnvelope(context.Background(), attest.PayloadType, payload, ss...)
	if err != nil {
		k.t.Fatal(err)
	}
	b, err := attest.MarshalEnvelope(env)
	if err != nil {
		k.t.Fatal(err)
	}
	return b
}

// tamperSig corrupts signature i of an envelope.
func tamperSig(t *testing.T, b []byte, i int) []byte {
	t.Helper()
	env, err := attest.ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[i].Sig)
	sig[0] ^= 1
	env.Signatures[i].Sig = base64.StdEncoding.EncodeToString(sig)
	out, err := attest.MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rawCID(b []byte) (cid.Cid, []byte) {
	sum := sha256.Sum256(b)
	m, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.Raw, m), sum[:]
}

// TestCheckApproved: the apply gate's verdict over real envelopes signed by
// generated keys (keys 0-2 trusted approvers, threshold 2; key 3 not in the
// policy).
func TestCheckApproved(t *testing.T) {
	k := newApproverKit(t, 4, 3, 2)
	patch := []byte("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
	other := []byte("another patch\n")
	pc, sum := rawCID(patch)
	oc, osum := rawCID(other)
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.patch")
	if err := os.WriteFile(pf, patch, 0o644); err != nil {
		t.Fatal(err)
	}
	recBlk, err := schemas.EncodeBlock(&schemas.Patch{Bytes: pc, Sha256: sum, Size: int64(len(patch)), Files: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	rc := recBlk.Cid()
	in := func(envs ...[]byte) []approvalInput {
		var out []approvalInput
		for i, e := range envs {
			out = append(out, approvalInput{Source: "a" + string(rune('0'+i)), Bytes: e})
		}
		return out
	}
	cases := []struct {
		name          string
		target        string // "file", "raw" (the bytes' raw CID), "record"
		ins           []approvalInput
		approved      bool
		signed        int
		untrusted     []int
		invalid       []int
		ignored       int
		ignoredReason string
		matched       string
	}{
		{name: "below threshold", target: "file", ins: in(k.approval(rc, sum, 0)), signed: 1, matched: "sha256"},
		{name: "exactly threshold, two envelopes", target: "file", ins: in(k.approval(rc, sum, 0), k.approval(rc, sum, 1)), approved: true, signed: 2, matched: "sha256"},
		{name: "exactly threshold, one envelope", target: "file", ins: in(k.approval(rc, sum, 0, 1)), approved: true, signed: 2, matched: "sha256"},
		{name: "above threshold", target: "file", ins: in(k.approval(rc, sum, 0, 1, 2)), approved: true, signed: 3, matched: "sha256"},
		{name: "duplicate signer counted once", target: "file", ins: in(k.approval(rc, sum, 0), k.approval(rc, sum, 0), k.approval(rc, sum, 0, 0)), signed: 1, matched: "sha256"},
		{name: "untrusted key ignored", target: "file", ins: in(k.approval(rc, sum, 0, 3)), signed: 1, untrusted: []int{3}, matched: "sha256"},
		{name: "only an untrusted key", target: "file", ins: in(k.approval(rc, sum, 3)), signed: 0, untrusted: []int{3}, ignored: 1, ignoredReason: "untrusted"},
		{name: "approval for another patch ignored", target: "file", ins: in(k.approval(oc, osum, 0, 1), k.approval(rc, sum, 2)), signed: 1, ignored: 1, ignoredReason: "approves another patch", matched: "sha256"},
		{name: "signature that does not verify", target: "file", ins: in(tamperSig(t, k.approval(rc, sum, 0, 1), 1)), signed: 1, invalid: []int{1}, matched: "sha256"},
		{name: "subject digest is not the approved sha256", target: "file", ins: in(k.approvalSHA(rc, osum, hex.EncodeToString(sum), 0, 1)), ignored: 1, ignoredReason: "but the approval approves sha256"},
		{name: "patch record CID", target: "record", ins: in(k.approval(rc, sum, 0, 1)), approved: true, signed: 2, matched: "patch-record-cid"},
		{name: "patch record CID, approval of another record", target: "record", ins: in(k.approval(oc, osum, 0, 1)), ignored: 1, ignoredReason: "approves another patch"},
		{name: "raw bytes CID", target: "raw", ins: in(k.approval(pc, sum, 0, 1)), approved: true, signed: 2, matched: "unixfs-cid"},
		{name: "sha mismatch: names the CID, approves other bytes", target: "raw", ins: in(k.approval(pc, osum, 0, 1)), ignored: 1, ignoredReason: "that patch's bytes have sha256"},
		{name: "not an envelope", target: "file", ins: in([]byte(`{"payloadType":1}`)), ignored: 1},
		{name: "a proposal is not an approval", target: "file", ins: in(func() []byte {
			_, payload, _ := attest.NewStatement(attest.PredicateProposal, []attest.ResourceDescriptor{attest.Subject(rc, sum, "")}, attest.ProposalPredicate{Workspace: "/w", Patch: attest.PatchRef{CID: rc.String(), SHA256: hex.EncodeToString(sum)}, AuditLine: attest.AuditLine{Snapshot: rc.String()}, Action: "controller_run"})
			env, _ := attest.SignEnvelope(context.Background(), attest.PayloadType, payload, k.keys[0], k.keys[1])
			b, _ := attest.MarshalEnvelope(env)
			return b
		}()), ignored: 1, ignoredReason: "want " + attest.PredicateApproval},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			arg := map[string]string{"file": pf, "raw": pc.String(), "record": rc.String()}[tc.target]
			tg, err := parsePatchTarget(arg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := checkApproved(tg, k.policy, tc.ins, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Approved != tc.approved || len(r.Signed) != tc.signed {
				t.Fatalf("approved %v with %d signers %v, want %v with %d (%+v)", r.Approved, len(r.Signed), r.Signed, tc.approved, tc.signed, r.Approvals)
			}
			for _, want := range [][2]any{{tc.untrusted, r.Untrusted}, {tc.invalid, r.Invalid}} {
				var ids []string
				for _, i := range want[0].([]int) {
					ids = append(ids, k.keys[i].KeyID())
				}
				if got := want[1].([]string); !slices.Equal(ids, got) && (len(ids) > 0 || len(got) > 0) {
					t.Fatalf("keys %v, want %v", got, ids)
				}
			}
			ignored := 0
			for _, a := range r.Approvals {
				if a.Ignored != "" {
					ignored++
					if !strings.Contains(a.Ignored, tc.ignoredReason) {
						t.Fatalf("ignored %s: %q, want it to say %q", a.Source, a.Ignored, tc.ignoredReason)
					}
				} else if a.Matched != tc.matched {
					t.Fatalf("%s matched by %q, want %q", a.Source, a.Matched, tc.matched)
				}
			}
			if ignored != tc.ignored {
				t.Fatalf("%d ignored, want %d: %+v", ignored, tc.ignored, r.Approvals)
			}
			if !r.Approved && !strings.Contains(r.summary(), "threshold 2 of 3") {
				t.Fatalf("summary %q does not name the threshold", r.summary())
			}
		})
	}
}

// TestCLIApproved drives the real binary against a real node over
// httptest: approvals are the node's approval/v1 attestations, and
// --approval files; the patch is named by file, Patch record CID and the
// UnixFS CID of its bytes.
func TestCLIApproved(t *testing.T) {
	_, bin, err := clitest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := newApproverKit(t, 4, 3, 2)
	dir := filepath.Join(t.TempDir(), "n")
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	patch := []byte("--- a/configuration.nix\n+++ b/configuration.nix\n@@ -1 +1 @@\n-{ }\n+{ services.foo.enable = true; }\n")
	sum := sha256.Sum256(patch)
	bc, err := n.Store.Add(ctx, bytes.NewReader(patch), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blk, err := schemas.EncodeBlock(&schemas.Patch{Bytes: bc, Sha256: sum[:], Size: int64(len(patch)), Files: []string{"configuration.nix"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.Blockstore().Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	rc := blk.Cid()
	pub := &attest.Publisher{Blocks: n.Store.Blockstore(), Log: n.Log, Index: n.Attest}
	publish := func(b []byte) {
		t.Helper()
		if _, err := pub.Publish(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	h, err := daemon.Handler(n, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	polf := write("policy.json", k.pjson)
	pf := write("p.patch", patch)
	run := func(want int, wantOut string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"approved"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want || !strings.Contains(out.String(), wantOut) {
			t.Fatalf("approved %v: exit %d, want %d (output should contain %q):\n%s", args, code, want, wantOut, out.String())
		}
		return out.String()
	}
	// Usage.
	run(2, "--policy TRUST is required", pf, "--node", srv.URL)
	run(2, "neither a file nor a CID", filepath.Join(tmp, "missing.patch"), "--policy", polf, "--node", srv.URL)
	run(2, "give --node URL or --approval FILE", pf, "--policy", polf)

	// One approver (plus a key the policy does not trust) has signed.
	publish(k.approval(rc, sum[:], 0, 3))
	run(1, "1 distinct trusted approver key(s) signed ("+k.keys[0].KeyID()+"), threshold 2 of 3; untrusted keys not counted: "+k.keys[3].KeyID(), pf, "--policy", polf, "--node", srv.URL)
	// The same approver again does not add up.
	publish(k.approval(rc, sum[:], 0))
	run(1, "1 distinct trusted approver key(s)", rc.String(), "--policy", polf, "--node", srv.URL)
	// A second approver's signature in a file given with --approval.
	second := write("second.json", k.approval(rc, sum[:], 1))
	run(0, "APPROVED: 2 of threshold 2", pf, "--policy", polf, "--node", srv.URL, "--approval", second)
	run(0, "matched by patch-record-cid", rc.String(), "--policy", polf, "--node", srv.URL, "--approval", second)
	run(0, "matched by unixfs-cid", bc.String(), "--policy", polf, "--node", srv.URL, "--approval", second)
	// The file alone, without the node: one approver.
	run(1, "1 distinct trusted approver key(s)", pf, "--policy", polf, "--approval", second)
	// Published on the node, it counts without the file; --json says so.
	publish(k.approval(rc, sum[:], 1))
	out := run(0, `"approved": true`, pf, "--policy", polf, "--node", srv.URL, "--json")
	var rep struct {
		Approved bool     `json:"approved"`
		Signed   []string `json:"signed"`
		Patch    struct {
			SHA256 string `json:"sha256"`
		} `json:"patch"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(rep.Signed) != 2 || rep.Patch.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("--json: %+v", rep)
	}
	// Another patch's file is not approved by them.
	run(1, "0 distinct trusted approver key(s)", write("other.patch", []byte("other\n")), "--policy", polf, "--node", srv.URL)
	// The node unreachable: could not check.
	srv.Close()
	run(3, "could not fetch from the node", pf, "--policy", polf, "--node", srv.URL)
}

// FuzzCheckApproved: no envelope bytes make the gate panic, and it never
// approves with fewer distinct trusted signers than the threshold.
func FuzzCheckApproved(f *testing.F) {
	k := newApproverKit(f, 3, 2, 2)
	patch := []byte("patch\n")
	pc, sum := rawCID(patch)
	f.Add(k.approval(pc, sum, 0, 1))
	f.Add(k.approval(pc, sum, 0, 2))
	f.Add(k.approvalSHA(pc, sum, strings.Repeat("00", 32), 0))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"x","sig":"AA=="}]}`))
	f.Add([]byte(`{"payloadType":"a","payloadType":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, err := parsePatchTarget(pc.String())
		if err != nil {
			t.Fatal(err)
		}
		r, err := checkApproved(tg, k.policy, []approvalInput{{Source: "fuzz", Bytes: b}, {Source: "fuzz2", Bytes: b}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Approved && len(r.Signed) < r.Threshold {
			t.Fatalf("approved with %d signers, threshold %d", len(r.Signed), r.Threshold)
		}
		for _, s := range r.Signed {
			if !k.policy.ApproverKeySet().Has(s) {
				t.Fatalf("counted %s, not an approver", s)
			}
		}
	})
}
