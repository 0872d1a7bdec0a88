package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
)

// IngestSetup configures NewIngester.
type IngestSetup struct {
	// Policy is the boundary policy (nil: the built-in one), tightened by
	// the trust policy.
	Policy *audit.Policy
	// TrustPolicy names the approver and node keys (nil: the data dir's
	// trust-policy.json when there is one).
	TrustPolicy *attest.Policy
	// NoAttest stores and checks but publishes nothing.
	NoAttest bool
}

// ErrApproversNeedTrustPolicy: the boundary policy names approvers but no
// trust policy gives their keys.
var ErrApproversNeedTrustPolicy = fmt.Errorf("the policy names approvers; their keys come from a trust policy")

// NewIngester returns the node's ingester: it stores into the node,
// attests with the node's key through its Publisher, counts the approvals
// in its index that verify with the trust policy's approver keys (rule 2),
// and checks rule 5 against the running-configs (v1 and v2) its own or
// trusted node keys signed.
func (n *Node) NewIngester(o IngestSetup) (*audit.Ingester, error) {
	tp := o.TrustPolicy
	if tp == nil {
		if p := filepath.Join(n.Dir, TrustPolicyFile); fileExists(p) {
			var err error
			if tp, err = attest.LoadPolicy(p); err != nil {
				return nil, fmt.Errorf("trust policy %s: %w", p, err)
			}
		}
	}
	pol := o.Policy
	if tp != nil {
		var err error
		if pol, err = audit.WithTrustPolicy(pol, tp); err != nil {
			return nil, err
		}
	}
	if pol == nil {
		pol = &audit.Policy{}
	}
	ing := audit.NewIngester(n.Store, n.DB)
	ing.Policy = pol
	signer, err := attest.LoadSigner(filepath.Join(n.Dir, AttestKeyFile))
	if err != nil {
		return nil, err
	}
	if !o.NoAttest {
		ing.Attester = audit.PublisherAttester{Publisher: n.Publisher(), Signer: signer}
	}
	if !pol.SingleOperator() {
		if tp == nil {
			return nil, ErrApproversNeedTrustPolicy
		}
		ing.Approvals = n.indexedApprovals(tp.ApproverKeySet())
	}
	nodeKeys := []*attest.Verifier{signer.Verifier()}
	if tp != nil {
		nodeKeys = append(nodeKeys, tp.NodeKeySet().List()...)
	}
	ing.RunningConfigs = n.indexedRunningConfigs(attest.NewKeySet(nodeKeys...))
	return ing, nil
}

// indexedRunningConfigs returns the running-config attestations (v1, and
// v2 with a configuration link) of the node's index that verify with keys.
func (n *Node) indexedRunningConfigs(keys *attest.KeySet) audit.RunningConfigSource {
	return func(ctx context.Context) ([]audit.RunningConfigClaim, error) {
		var out []audit.RunningConfigClaim
		for _, pt := range []string{attest.PredicateRunningConfig, attest.PredicateRunningConfigV2} {
			recs, err := n.Attest.Search(attest.Query{PredicateType: pt})
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				c, err := cid.Decode(r.ID)
				if err != nil {
					continue
				}
				blk, err := n.Store.Blockstore().Get(ctx, c)
				if err != nil {
					return nil, fmt.Errorf("running config %s: %w", r.ID, err)
				}
				env, err := attest.ParseEnvelope(blk.RawData())
				if err != nil {
					continue
				}
				_, payload, err := attest.VerifySignatures(env, keys, 1)
				if err != nil {
					continue // not this node's, nor trusted
				}
				st, err := attest.ParseStatement(payload)
				if err != nil || st.PredicateType != pt {
					continue
				}
				var applies []string
				if pt == attest.PredicateRunningConfig {
					var p attest.RunningConfigPredicate
					if st.DecodePredicate(&p) != nil {
						continue
					}
					applies = p.Applies
				} else {
					var p attest.RunningConfigV2Predicate
					if st.DecodePredicate(&p) != nil || p.Configuration == nil {
						continue
					}
					applies = p.Configuration.Applies
				}
				out = append(out, audit.RunningConfigClaim{ID: r.ID, Applies: applies})
			}
		}
		return out, nil
	}
}

// indexedApprovals returns the approval/v1 attestations of the node's index
// that verify with the approver keys.
func (n *Node) indexedApprovals(ks *attest.KeySet) audit.ApprovalSource {
	return func(ctx context.Context) ([]audit.Approval, error) {
		recs, err := n.Attest.Search(attest.Query{PredicateType: attest.PredicateApproval})
		if err != nil {
			return nil, err
		}
		var envs [][]byte
		for _, r := range recs {
			c, err := cid.Decode(r.ID)
			if err != nil {
				continue
			}
			blk, err := n.Store.Blockstore().Get(ctx, c)
			if err != nil {
				return nil, fmt.Errorf("approval %s: %w", r.ID, err)
			}
			envs = append(envs, blk.RawData())
		}
		apps, _ := audit.VerifyApprovals(envs, ks) // unverifiable approvals do not count
		return apps, nil
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
