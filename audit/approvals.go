package audit

import (
	"fmt"

	"github.com/agentix/agentix-store/attest"
)

// VerifyApprovals turns approval/v1 envelopes into Approvals: for each
// envelope, the distinct keys of approvers whose signatures verify, and the
// patch sha256 it approves. An envelope that is not an approval/v1
// statement, or that no approver key signed, is returned as an error
// naming its index; the others are still returned. Recorded times are left
// zero (unknown); callers that know when an approval was logged set Time.
func VerifyApprovals(envs [][]byte, approvers *attest.KeySet) ([]Approval, []error) {
	var out []Approval
	var errs []error
	for i, b := range envs {
		env, err := attest.ParseEnvelope(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("approval %d: %w", i, err))
			continue
		}
		signers, payload, err := attest.VerifySignatures(env, approvers, 1)
		if err != nil {
			errs = append(errs, fmt.Errorf("approval %d: %w", i, err))
			continue
		}
		st, err := attest.ParseStatement(payload)
		if err != nil {
			errs = append(errs, fmt.Errorf("approval %d: %w", i, err))
			continue
		}
		if st.PredicateType != attest.PredicateApproval {
			errs = append(errs, fmt.Errorf("approval %d: predicate type %s, want %s", i, st.PredicateType, attest.PredicateApproval))
			continue
		}
		var p attest.ApprovalPredicate
		if err := st.DecodePredicate(&p); err != nil {
			errs = append(errs, fmt.Errorf("approval %d: %w", i, err))
			continue
		}
		out = append(out, Approval{ID: attest.ID(b).String(), PatchSHA256: p.Patch.SHA256, Signers: signers})
	}
	return out, errs
}
