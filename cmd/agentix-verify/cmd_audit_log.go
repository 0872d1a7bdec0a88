package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
)

func init() { register(newAuditLogCmd) }

func newAuditLogCmd() *cobra.Command {
	var boundaryPath, trustPath string
	var approvalFiles []string
	c := &cobra.Command{
		Use:   "audit-log WORKSPACE",
		Short: "Check the safety boundary over a local Agentix workspace (exit 0 only when it held)",
		Long: `audit-log reads WORKSPACE/.agentix/audit.jsonl and the proposal patches it
names, and evaluates the safety-boundary rules: every applied patch was saved
by a sandboxed run with source_modified false (rule 1); with approvers in the
policy, it carries a threshold approval (rule 2, approvals from --approval
files verified with the trust policy's approver keys); no agent-run event
sets a forbidden flag and no denied request is applied (rule 3).

Without a store there is no history: rule 1 compares the applied patch with
the bytes present now, and rule 4 (append-only) is checked by
'agentix-store ingest', which keeps every snapshot.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{msg: fmt.Sprintf("audit-log: want 1 argument (WORKSPACE), got %d", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pol := &audit.Policy{}
			if boundaryPath != "" {
				var err error
				if pol, err = audit.LoadPolicy(boundaryPath); err != nil {
					return &usageError{msg: err.Error()}
				}
			}
			var in audit.Inputs
			if !pol.SingleOperator() || len(approvalFiles) > 0 {
				if trustPath == "" {
					return &usageError{msg: "audit-log: approvers need --trust-policy (their public keys)"}
				}
				tp, err := attest.LoadPolicy(trustPath)
				if err != nil {
					return &usageError{msg: err.Error()}
				}
				var envs [][]byte
				for _, f := range approvalFiles {
					b, err := os.ReadFile(f)
					if err != nil {
						return err
					}
					envs = append(envs, b)
				}
				apps, errs := audit.VerifyApprovals(envs, tp.ApproverKeySet())
				for _, e := range errs {
					fmt.Fprintf(cmd.ErrOrStderr(), "agentix-verify: ignoring %v\n", e)
				}
				in.Approvals = apps
			}
			rep, err := audit.CheckWorkspace(args[0], pol, in)
			if err != nil {
				return err
			}
			if a.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printAuditLog(cmd.OutOrStdout(), rep)
			}
			if !rep.Result.Passed {
				return &verifyFailed{msg: fmt.Sprintf("safety boundary violated in %s (%d violation(s))", args[0], len(rep.Result.Violations))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&boundaryPath, "boundary", "", "boundary policy file (tightens the built-in single-operator policy)")
	c.Flags().StringVar(&trustPath, "trust-policy", "", "trust policy with the approver keys (needed with approvers)")
	c.Flags().StringArrayVar(&approvalFiles, "approval", nil, "approval/v1 DSSE envelope file (repeatable)")
	return c
}

func printAuditLog(w io.Writer, r *audit.CheckReport) {
	b := r.Result
	verdict := "HELD"
	if !b.Passed {
		verdict = "VIOLATED"
	}
	mode := "approvers m-of-n"
	if b.SingleOperator {
		mode = "single-operator: each human apply line stands as the approval"
	}
	fmt.Fprintf(w, "%s: %d lines, root %s\n", r.Workspace, r.Lines, r.Root)
	fmt.Fprintf(w, "boundary %s: %d applies; %s; policy sha256 %s\n", verdict, b.Applies, mode, b.Policy)
	for i := range b.Violations {
		fmt.Fprintf(w, "  violation: %v\n", &b.Violations[i])
	}
	for _, f := range b.Findings {
		fmt.Fprintf(w, "  finding: line %d: %s\n", f.Line, f.Message)
	}
	if r.Pending > 0 {
		fmt.Fprintf(w, "  note: %d bytes of an incomplete last line not checked\n", r.Pending)
	}
}
