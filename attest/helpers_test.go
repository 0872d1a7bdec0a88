package attest

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// testKey generates a signer for alg.
func testKey(t testing.TB, alg string) *Signer {
	t.Helper()
	priv, _, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParsePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testPolicy trusts node keys and approver keys with the given threshold.
func testPolicy(t testing.TB, node []*Signer, approvers []*Signer, threshold int) *Policy {
	t.Helper()
	p := Policy{Version: PolicyVersion}
	for _, s := range node {
		p.NodeKeys = append(p.NodeKeys, KeyPolicyFor("node", s.Verifier()))
	}
	for _, s := range approvers {
		p.Approvers.Keys = append(p.Approvers.Keys, KeyPolicyFor("approver", s.Verifier()))
	}
	p.Approvers.Threshold = threshold
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawCID is the raw-codec CIDv1 sha2-256 of b, and its sha256.
func rawCID(t testing.TB, b []byte) (cid.Cid, []byte) {
	t.Helper()
	sum := sha256.Sum256(b)
	m, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, m), sum[:]
}

func testPatch(t testing.TB, body string) (ResourceDescriptor, PatchRef) {
	c, sum := rawCID(t, []byte(body))
	rd := Subject(c, sum, "proposals/test.patch")
	return rd, PatchRef{CID: c.String(), SHA256: rd.SHA256(), Path: "proposals/test.patch"}
}

func proposalStatement(t testing.TB, body string) []byte {
	t.Helper()
	rd, ref := testPatch(t, body)
	snap, _ := rawCID(t, []byte("snapshot"))
	_, payload, err := NewStatement(PredicateProposal, []ResourceDescriptor{rd}, ProposalPredicate{
		Workspace: "/home/operator/nixos-config",
		Patch:     ref,
		AuditLine: AuditLine{Snapshot: snap.String(), Line: 1},
		Action:    "controller_run",
		Mode:      "execute",
	})
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

func approvalStatement(t testing.TB, body string) []byte {
	t.Helper()
	rd, ref := testPatch(t, body)
	_, payload, err := NewStatement(PredicateApproval, []ResourceDescriptor{rd}, ApprovalPredicate{Patch: ref})
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

func sign(t testing.TB, payloadType string, payload []byte, signers ...*Signer) *Envelope {
	t.Helper()
	env, err := SignEnvelope(context.Background(), payloadType, payload, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
