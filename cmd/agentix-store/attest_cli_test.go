package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/attest"
)

// TestAttestApproveBundleCLI drives approve (two approvers, merged), attest,
// attestation ls and bundle through the binary, then verifies the bundle
// offline against the node's own trust policy plus the approvers.
func TestAttestApproveBundleCLI(t *testing.T) {
	dir := initDir(t)
	tmp := t.TempDir()
	patch := filepath.Join(tmp, "p.patch")
	if err := os.WriteFile(patch, []byte("diff --git a/x b/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pcid := strings.Fields(string(ok(t, dir, nil, "add", patch)))[0]
	sum := sha256.Sum256([]byte("diff --git a/x b/x\n"))
	sha := hex.EncodeToString(sum[:])

	// A second approver key besides the node's own.
	priv, _, err := attest.GenerateKey(attest.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	bobKey := filepath.Join(tmp, "bob.key")
	if err := os.WriteFile(bobKey, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	e1, e2, merged := filepath.Join(tmp, "a.json"), filepath.Join(tmp, "b.json"), filepath.Join(tmp, "m.json")
	ok(t, dir, nil, "approve", pcid, "--sha256", sha, "--output", e1)
	ok(t, dir, nil, "approve", pcid, "--sha256", sha, "--key", bobKey, "--output", e2)
	ok(t, dir, nil, "approve", "merge", e1, e2, "--output", merged)

	var pub publishResult
	if err := json.Unmarshal(ok(t, dir, nil, "--json", "attest", merged), &pub); err != nil {
		t.Fatal(err)
	}
	var recs []attest.Record
	if err := json.Unmarshal(ok(t, dir, nil, "--json", "attestation", "ls", "--subject", pcid), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != pub.ID || len(recs[0].Signers) != 2 {
		t.Fatalf("attestation ls: %+v (published %+v)", recs, pub)
	}
	if r := run(t, dir, nil, "attest", e1+".missing"); r.code == 0 {
		t.Fatal("attest of a missing file succeeded")
	}
	bundle := ok(t, dir, nil, "bundle", pub.ID, "--car")

	// The node's own policy names no approvers: the approval is untrusted.
	own, err := attest.LoadPolicy(filepath.Join(dir, "trust-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.VerifyBundle(bundle, own); !errors.Is(err, attest.ErrUntrustedKey) {
		t.Fatalf("bundle against own policy: %v, want ErrUntrustedKey", err)
	}
	// Adding both approvers with threshold 2 makes it verify.
	nodeSigner, err := attest.LoadSigner(filepath.Join(dir, "keys", "attest.key"))
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := attest.LoadSigner(bobKey)
	own.Approvers = attest.ApproverPolicy{Threshold: 2, Keys: []attest.KeyPolicy{
		attest.KeyPolicyFor("node", nodeSigner.Verifier()), attest.KeyPolicyFor("bob", bob.Verifier())}}
	b, _ := own.Marshal()
	pol, err := attest.ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := attest.VerifyBundle(bundle, pol)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signers) != 2 || res.LogIndex != pub.LogIndex || len(res.SubjectsInCAR) != 1 {
		t.Fatalf("bundle result %+v", res)
	}
}
