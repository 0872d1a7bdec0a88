package main

import (
	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/verify"
)

func init() { register(newNodeCmd) }

func newNodeCmd() *cobra.Command {
	var o verify.NodeOptions
	c := &cobra.Command{
		Use:   "node URL --policy TRUST",
		Short: "Audit a live node: log, running-config, closure, applies, proposals, approvals",
		Long: `node checks the whole claim of one node from its daemon at URL: its log
(as 'log' does, with the auditor state), its latest running-config
attestation (verified and proven included in the log), the closure it names
(fetched as a CAR; every block and every NAR hash checked, completeness;
--shallow checks the root record only), each apply behind it with the
proposal (sandboxed run) and approval it rests on, and every audit-log
snapshot: its raw bytes fetched and hash-checked, the RFC 6962 root and line
count recomputed, consistency with the workspace's earlier snapshot, and the
safety boundary recomputed with this policy (its approvers; approvals are the
node's approval/v1 envelopes signed by those keys). The node's own verdict is
never trusted. Exit 0: proven; 1: a check failed; 3: something could not be
checked.`,
		Args: oneArg("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPolicy("node")
			if err != nil {
				return err
			}
			if o.State, err = openState(); err != nil {
				return err
			}
			o.HTTP = httpClient
			return emit(cmd, verify.CheckNode(cmd.Context(), args[0], p, o))
		},
	}
	policyFlag(c)
	c.Flags().BoolVar(&o.Shallow, "shallow", false, "check the closure's root record only (no NARs)")
	c.Flags().BoolVar(&o.Rebuild, "rebuild", false, "also build the latest configuration's toplevel with this machine's Nix and compare every path's NAR hash with the node's (reproducibility)")
	return c
}
