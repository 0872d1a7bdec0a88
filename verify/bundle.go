package verify

import (
	"fmt"

	"github.com/agentix/agentix-store/attest"
)

// Bundle verifies an offline bundle (attest.VerifyBundle) and reports what
// it proved: the envelope's signers and threshold, the statement and
// predicate schema, the checkpoint's signature and witnesses, the inclusion
// proof, and the CAR's blocks.
func Bundle(b []byte, p *attest.Policy, target string) *Report {
	r := NewReport("bundle", target)
	res, err := attest.VerifyBundle(b, p)
	if err != nil {
		check := "envelope"
		switch Reason(err) {
		case "checkpoint-signature", "witness-quorum":
			check = "checkpoint"
		case "inclusion-proof":
			check = "inclusion"
		case "block-hash-mismatch":
			check = "car"
		case "bad-bundle":
			check = "bundle"
		}
		var entry *uint64
		if bu, perr := attest.ParseBundle(b); perr == nil {
			entry = ptr(bu.LogIndex)
		}
		r.Fail(check, entry, "", err)
		return r.Done()
	}
	r.Prove("attestation %s is the envelope's CID", res.ID)
	r.Prove("%s signed by %d of %d required %s key(s): %v", res.PredicateType, len(res.Signers), res.Threshold, res.Role, res.Signers)
	r.Prove("in-toto statement v1 with %d subject(s); predicate satisfies its JSON Schema", len(res.Statement.Subject))
	r.Prove("checkpoint of %s at size %d signed by the log's key; %d witness cosignature(s) %v", res.Checkpoint.Origin, res.Checkpoint.Size, len(res.Witnesses), res.Witnesses)
	r.Prove("entry %d is included in that checkpoint's tree", res.LogIndex)
	if res.Blocks > 0 {
		r.Prove("CAR: %d block(s) hash to their CIDs; %d subject root(s) present", res.Blocks, len(res.SubjectsInCAR))
	}
	r.Details["id"] = res.ID.String()
	r.Details["predicateType"] = res.PredicateType
	r.Details["logIndex"] = res.LogIndex
	r.Details["origin"] = res.Checkpoint.Origin
	r.Details["treeSize"] = res.Checkpoint.Size
	r.Details["signers"] = res.Signers
	r.Details["witnesses"] = res.Witnesses
	r.Details["blocks"] = res.Blocks
	return r.Done()
}

func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
