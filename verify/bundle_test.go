package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
)

// buildBundle returns the bundle (with CAR) of a published attestation.
func (tn *testNode) bundle(t testing.TB, id cid.Cid) *attest.Bundle {
	t.Helper()
	bb := &attest.BundleBuilder{Blocks: tn.n.Store.Blockstore(), Index: tn.n.Attest, Log: tn.n.Log, DAGs: tn.n.Store}
	bu, err := bb.Build(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	return bu
}

func marshalBundle(t testing.TB, bu *attest.Bundle) []byte {
	t.Helper()
	b, err := bu.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBundleTamper(t *testing.T) {
	ctx := context.Background()
	a := openNode(t, initNodeDir(t, "alpha"))
	other := openNode(t, initNodeDir(t, "beta"))
	p0 := a.proposal(t, "first patch")
	p1 := a.proposal(t, "second patch, with a body long enough to matter")
	good := a.bundle(t, p1.ID)
	mustOK(t, Bundle(marshalBundle(t, good), a.policy, "good"))

	// Approvals: a policy with two approvers and threshold 2.
	ap1, ap2 := testSigner(t), testSigner(t)
	pol2 := withApprovers(t, a.policy, 2, ap1, ap2)
	approval := func(signers ...*attest.Signer) []byte {
		rd := attest.Subject(p0.ID, sha256sum([]byte("x")), "")
		_, payload, err := attest.NewStatement(attest.PredicateApproval, []attest.ResourceDescriptor{rd}, attest.ApprovalPredicate{Patch: attest.PatchRef{CID: p0.ID.String(), SHA256: rd.SHA256()}})
		if err != nil {
			t.Fatal(err)
		}
		env, err := attest.SignEnvelope(ctx, attest.PayloadType, payload, signers...)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := attest.MarshalEnvelope(env)
		return b
	}
	publishBundle := func(env []byte) *attest.Bundle {
		pub, err := a.pub.Publish(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		bb := &attest.BundleBuilder{Blocks: a.n.Store.Blockstore(), Index: a.n.Attest, Log: a.n.Log}
		bu, err := bb.Build(ctx, pub.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		return bu
	}
	okApproval := publishBundle(approval(ap1, ap2))
	mustOK(t, Bundle(marshalBundle(t, okApproval), pol2, "approval"))
	below := publishBundle(approval(ap1))
	// One approver signing twice (two signatures under its key id).
	dupEnv := approval(ap1)
	var env attest.Envelope
	json.Unmarshal(dupEnv, &env)
	env.Signatures = append(env.Signatures, env.Signatures[0])
	dupEnv, _ = attest.MarshalEnvelope(&env)
	dup := publishBundle(dupEnv)
	untrusted := publishBundle(a.proposalEnvelope(t, "by another node", other.signer))

	flip := func(f func(bu *attest.Bundle)) []byte {
		var bu attest.Bundle
		json.Unmarshal(marshalBundle(t, good), &bu)
		f(&bu)
		return marshalBundle(t, &bu)
	}
	cases := []struct {
		name   string
		bundle []byte
		policy *attest.Policy
		reason string
	}{
		{"forged signature", flip(func(bu *attest.Bundle) {
			var e attest.Envelope
			json.Unmarshal(bu.Envelope, &e)
			first := "A"
			if e.Signatures[0].Sig[0] == 'A' {
				first = "B"
			}
			e.Signatures[0].Sig = first + e.Signatures[0].Sig[1:]
			bu.Envelope, _ = attest.MarshalEnvelope(&e)
			bu.ID = attest.ID(bu.Envelope).String()
		}), a.policy, "forged-signature"},
		{"untrusted signer", marshalBundle(t, untrusted), a.policy, "untrusted-signer"},
		{"approvals below threshold", marshalBundle(t, below), pol2, "below-threshold"},
		{"duplicate approver signatures", marshalBundle(t, dup), pol2, "duplicate-signer"},
		{"checkpoint signed by the wrong key", marshalBundle(t, good), withLogKey(t, a.policy, other.policy.Logs[0].Key, a.n.Log.Origin()), "checkpoint-signature"},
		{"inclusion proof for the wrong index", flip(func(bu *attest.Bundle) { bu.LogIndex = p0.LogIndex }), a.policy, "inclusion-proof"},
		{"flipped byte in a stored block", flip(func(bu *attest.Bundle) {
			// The patch bytes sit in a raw leaf block near the CAR's end.
			i := bytes.Index(bu.CAR, []byte("with a body"))
			if i < 0 {
				t.Fatal("patch bytes not in CAR")
			}
			bu.CAR[i] ^= 0x20
		}), a.policy, "block-hash-mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Bundle(c.bundle, c.policy, c.name)
			if r.OK || len(r.Failures) != 1 || r.Failures[0].Reason != c.reason {
				t.Fatalf("want one %q failure, got %+v", c.reason, r.Failures)
			}
			var buf bytes.Buffer
			r.WriteText(&buf)
			if !bytes.Contains(buf.Bytes(), []byte(c.reason)) || !bytes.Contains(buf.Bytes(), []byte("FAILED")) {
				t.Fatalf("summary does not name the reason:\n%s", buf.String())
			}
		})
	}
}

func testSigner(t testing.TB) *attest.Signer {
	t.Helper()
	priv, _, err := attest.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.ParsePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reparse(t testing.TB, p *attest.Policy) *attest.Policy {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := attest.ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func withApprovers(t testing.TB, p *attest.Policy, m int, ss ...*attest.Signer) *attest.Policy {
	cp := *p
	cp.Approvers = attest.ApproverPolicy{Threshold: m}
	for _, s := range ss {
		cp.Approvers.Keys = append(cp.Approvers.Keys, attest.KeyPolicyFor("approver", s.Verifier()))
	}
	return reparse(t, &cp)
}

func withLogKey(t testing.TB, p *attest.Policy, key, origin string) *attest.Policy {
	cp := *p
	cp.Logs = []attest.LogPolicy{{Origin: origin, Key: key}}
	cp.Nodes = nil
	cp.NodeKeys = append([]attest.KeyPolicy(nil), p.NodeKeys...)
	for _, n := range p.Nodes {
		for _, k := range n.Keys {
			cp.NodeKeys = append(cp.NodeKeys, attest.KeyPolicy{Name: n.Name, KeyID: k.ID, PublicKey: k.PEM})
		}
	}
	return reparse(t, &cp)
}
