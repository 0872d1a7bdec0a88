package main

import (
	"net/http"

	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/verify"
)

func init() { register(newNodeCmd) }

func newNodeCmd() *cobra.Command {
	var o verify.NodeOptions
	var save string
	c := &cobra.Command{
		Use:   "node URL|RECORDING --policy TRUST [--save DIR]",
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
node's approval/v1 envelopes signed by those keys), and the configuration
chain behind a running-config/v2, replayed from the genesis with this
machine's Nix. The node's own verdict is never trusted.

--save DIR records every answer the audit read into DIR; 'node DIR' later
runs the same audit offline from that recording (its checks are the same:
signatures, proofs and hashes trust the recording no more than the node).
Exit 0: proven; 1: a check failed; 3: something could not be checked.`,
		Args: oneArg("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPolicy("node")
			if err != nil {
				return err
			}
			if o.State, err = openState(); err != nil {
				return err
			}
			target := args[0]
			o.HTTP = httpClient
			switch {
			case verify.IsRecording(target):
				if save != "" {
					return &usageError{Msg: "node: --save records a live node; " + target + " is already a recording"}
				}
				rp, err := verify.OpenRecording(target)
				if err != nil {
					return &usageError{Msg: err.Error()}
				}
				o.HTTP = &http.Client{Transport: rp}
				target = rp.Base()
			case save != "":
				rec, err := verify.NewRecorder(save, target)
				if err != nil {
					return &usageError{Msg: "--save: " + err.Error()}
				}
				o.HTTP = &http.Client{Transport: rec, Timeout: httpClient.Timeout}
				r := verify.CheckNode(cmd.Context(), target, p, o)
				if err := rec.Close(); err != nil {
					return err
				}
				return emit(cmd, r)
			}
			return emit(cmd, verify.CheckNode(cmd.Context(), target, p, o))
		},
	}
	policyFlag(c)
	c.Flags().BoolVar(&o.Shallow, "shallow", false, "check the closure's root record only (no NARs)")
	c.Flags().StringVar(&save, "save", "", "record every answer of the audit into DIR, for 'node DIR' offline")
	c.Flags().BoolVar(&o.Rebuild, "rebuild", false, "also build the latest configuration's toplevel with this machine's Nix and compare every path's NAR hash with the node's (reproducibility)")
	return c
}
