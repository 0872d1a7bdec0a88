package attest_test

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/agentix/agentix-store/attest"
)

// Two approvers sign one approval separately; the merged envelope meets the
// trust policy's 2-of-2 threshold.
func Example() {
	ctx := context.Background()
	alicePEM, _, _ := attest.GenerateKey(attest.AlgEd25519)
	bobPEM, _, _ := attest.GenerateKey(attest.AlgECDSAP256)
	alice, _ := attest.ParsePrivateKeyPEM(alicePEM)
	bob, _ := attest.ParsePrivateKeyPEM(bobPEM)

	patch := []byte("diff --git a/modules/foo.nix b/modules/foo.nix\n")
	sum := sha256.Sum256(patch)
	h, _ := mh.Encode(sum[:], mh.SHA2_256)
	c := cid.NewCidV1(cid.Raw, h)

	_, payload, err := attest.NewStatement(attest.PredicateApproval,
		[]attest.ResourceDescriptor{attest.Subject(c, sum[:], "")},
		attest.ApprovalPredicate{Patch: attest.PatchRef{CID: c.String(), SHA256: fmt.Sprintf("%x", sum)}})
	if err != nil {
		panic(err)
	}
	fromAlice, _ := attest.SignEnvelope(ctx, attest.PayloadType, payload, alice)
	fromBob, _ := attest.SignEnvelope(ctx, attest.PayloadType, payload, bob)
	merged, _ := attest.MergeEnvelopes(fromAlice, fromBob)

	policy, err := attest.ParsePolicy([]byte(fmt.Sprintf(`{"version":1,"approvers":{"threshold":2,"keys":[{"publicKey":%q},{"publicKey":%q}]}}`,
		alice.PublicKeyPEM(), bob.PublicKeyPEM())))
	if err != nil {
		panic(err)
	}
	res, err := attest.VerifyEnvelope(merged, policy)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.PredicateType, res.Role, len(res.Signers), "of", res.Threshold)

	_, err = attest.VerifyEnvelope(fromAlice, policy)
	fmt.Println(err != nil)
	// Output:
	// https://agentix.dev/attestation/approval/v1 approver 2 of 2
	// true
}
