package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"io"
	"os"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
)

func init() { register(newAuditLogCmd) }

func newAuditLogCmd() *cobra.Command {
	var boundaryPath, trustPath string
	var approvalFiles, attFiles, snapFiles []string
	c := &cobra.Command{
		Use:   "audit-log WORKSPACE [--trust-policy FILE] [--attestation FILE]... [--approval FILE]...",
		Short: "Check the safety boundary over a local Agentix workspace (exit 0 only when it held)",
		Long: `audit-log reads WORKSPACE/.agentix/audit.jsonl and the proposal patches it
names, and evaluates the safety-boundary rules: every applied patch was saved
by a sandboxed run with source_modified false (rule 1); with approvers in the
policy, it carries a threshold approval (rule 2); no agent-run event sets a
forbidden flag and no denied request is applied (rule 3); the file continues
every attested snapshot given (rule 4); every running configuration given
links only to applies that hold rules 1 and 2 (rule 5).

--attestation takes DSSE envelopes or bundles (agentix-store bundle ID
[--car]), each verified against --trust-policy before it counts:
  audit-log/v1       an earlier snapshot (N lines, root R): the RFC 6962
                     consistency proof from R at N to the root recomputed over
                     the current file must verify; with a bundle's CAR the
                     first differing line is named
  approval/v1        an approval (rule 2), counted per distinct approver key
  apply/v1           maps an apply attestation id to its audit line (rule 5)
  running-config/v1  the applies it names must hold rules 1 and 2 (rule 5)
--snapshot and --approval are the same flag under older names.

The boundary policy is the built-in single-operator one, tightened by
--boundary, by the trust policy's "boundary" object and by its approvers
(threshold m of the approver keys). Without a store there is no history:
rule 1 compares the applied patch with the bytes present now.

Exit status: 0 the boundary held; 1 it was violated; 2 usage; 3 could not
check.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{Msg: fmt.Sprintf("audit-log: want 1 argument (WORKSPACE), got %d", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var pol *audit.Policy
			if boundaryPath != "" {
				var err error
				if pol, err = audit.LoadPolicy(boundaryPath); err != nil {
					return &usageError{Msg: err.Error()}
				}
			}
			files := append(append(append([]string{}, attFiles...), snapFiles...), approvalFiles...)
			var tp *attest.Policy
			if trustPath != "" {
				var err error
				if tp, err = attest.LoadPolicy(trustPath); err != nil {
					return &usageError{Msg: err.Error()}
				}
				if pol, err = audit.WithTrustPolicy(pol, tp); err != nil {
					return &usageError{Msg: err.Error()}
				}
			}
			if pol == nil {
				pol = &audit.Policy{}
			}
			if tp == nil && (!pol.SingleOperator() || len(files) > 0) {
				return &usageError{Msg: "audit-log: approvers and attestations need --policy (the keys that must have signed them)"}
			}
			var in audit.Inputs
			if len(files) > 0 {
				var err error
				if in, err = loadAttestations(files, tp); err != nil {
					return err
				}
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
				msg := fmt.Sprintf("safety boundary violated in %s (%d violation(s))", args[0], len(rep.Result.Violations))
				for i := range rep.Result.Violations {
					msg += "\n  " + rep.Result.Violations[i].Error()
				}
				return &verifyFailed{msg: msg}
			}
			return nil
		},
	}
	c.Flags().StringVar(&boundaryPath, "boundary", "", "boundary policy file (tightens the built-in single-operator policy)")
	c.Flags().StringVar(&trustPath, "policy", "", "trust policy FILE: node, log and approver keys (needed with approvers or attestations)")
	cli.Renamed(c.Flags(), "trust-policy", "policy")
	c.Flags().StringArrayVar(&attFiles, "attestation", nil, "attestation envelope or bundle file: audit-log/v1, approval/v1, apply/v1, running-config/v1 (repeatable)")
	c.Flags().StringArrayVar(&snapFiles, "snapshot", nil, "same as --attestation (an audit-log/v1 bundle)")
	c.Flags().StringArrayVar(&approvalFiles, "approval", nil, "same as --attestation (an approval/v1 envelope)")
	return c
}

// maxSnapshotBytes bounds the audit log bytes read from a bundle's CAR.
const maxSnapshotBytes = 1 << 30

// loadAttestations verifies each file (a bundle, else a DSSE envelope)
// against tp and sorts what they state into rule inputs. A file that does
// not verify is a usage-level failure naming the file: an auditor must not
// silently check less than asked.
func loadAttestations(files []string, tp *attest.Policy) (audit.Inputs, error) {
	var in audit.Inputs
	var claims []audit.ApplyClaim
	type rc struct {
		id      string
		applies []string
	}
	var rcs []rc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return in, err
		}
		var (
			res *attest.Result
			car []byte
			id  string
		)
		// An approval counts per distinct approver key across all the
		// approvals given, so one below the threshold on its own still
		// counts: it is checked by its approver signatures only.
		raw := b
		if bu, perr := attest.ParseBundle(b); perr == nil {
			raw = bu.Envelope
		}
		if predicateTypeOf(raw) == attest.PredicateApproval {
			apps, errs := audit.VerifyApprovals([][]byte{raw}, tp.ApproverKeySet())
			if len(errs) > 0 {
				return in, &verifyFailed{msg: fmt.Sprintf("%s: %v", f, errs[0])}
			}
			in.Approvals = append(in.Approvals, apps...)
			continue
		}
		if bu, perr := attest.ParseBundle(b); perr == nil {
			br, err := attest.VerifyBundle(b, tp)
			if err != nil {
				return in, &verifyFailed{msg: fmt.Sprintf("%s: %v", f, err)}
			}
			res, car, id = br.Result, bu.CAR, br.ID.String()
		} else {
			r, err := attest.VerifyEnvelopeBytes(b, tp)
			if err != nil {
				return in, &verifyFailed{msg: fmt.Sprintf("%s: %v", f, err)}
			}
			res, id = r, attest.ID(b).String()
		}
		st := res.Statement
		switch st.PredicateType {
		case attest.PredicateAuditLog:
			var p attest.AuditLogPredicate
			if err := st.DecodePredicate(&p); err != nil {
				return in, fmt.Errorf("%s: %w", f, err)
			}
			root, err := hex.DecodeString(p.Snapshot.Root)
			if err != nil || len(root) != 32 {
				return in, &verifyFailed{msg: fmt.Sprintf("%s: snapshot root %q is not a SHA-256 hash", f, p.Snapshot.Root)}
			}
			s := audit.AttestedSnapshot{ID: id, Lines: p.Snapshot.Size, Root: root}
			if len(car) > 0 {
				for _, sub := range st.Subject {
					if sub.Name != audit.AuditLogPath {
						continue
					}
					c, err := cid.Decode(strings.TrimPrefix(sub.URI, "ipfs://"))
					if err != nil {
						continue
					}
					sum, _ := hex.DecodeString(sub.Digest["sha256"])
					if s.Bytes, err = audit.FileFromCAR(car, c, sum, maxSnapshotBytes); err != nil {
						return in, &verifyFailed{msg: fmt.Sprintf("%s: %v", f, err)}
					}
				}
			}
			in.Snapshots = append(in.Snapshots, s)
		case attest.PredicateApply:
			var p attest.ApplyPredicate
			if err := st.DecodePredicate(&p); err != nil {
				return in, fmt.Errorf("%s: %w", f, err)
			}
			claims = append(claims, audit.ApplyClaim{ID: id, Line: p.AuditLine.Line + 1, PatchSHA256: p.Patch.SHA256})
		case attest.PredicateRunningConfig:
			var p attest.RunningConfigPredicate
			if err := st.DecodePredicate(&p); err != nil {
				return in, fmt.Errorf("%s: %w", f, err)
			}
			rcs = append(rcs, rc{id, p.Applies})
		default:
			return in, &usageError{Msg: fmt.Sprintf("%s: a %s attestation says nothing about an audit log", f, st.PredicateType)}
		}
	}
	for _, r := range rcs {
		in.RunningConfigs = append(in.RunningConfigs, audit.LinkRunningConfig(r.id, r.applies, claims))
	}
	return in, nil
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
	for _, s := range r.Snapshots {
		state := "consistent (consistency proof verified)"
		if !s.Consistent {
			state = "NOT consistent"
		}
		fmt.Fprintf(w, "  snapshot %s: %d lines, root %s: %s\n", s.ID, s.Lines, s.Root, state)
	}
	if r.Pending > 0 {
		fmt.Fprintf(w, "  note: %d bytes of an incomplete last line not checked\n", r.Pending)
	}
}

// predicateTypeOf is the predicate type an envelope's payload claims
// (unverified; "" when it cannot be read).
func predicateTypeOf(envBytes []byte) string {
	env, err := attest.ParseEnvelope(envBytes)
	if err != nil {
		return ""
	}
	p, err := env.DecodeB64Payload()
	if err != nil {
		if p, err = base64.URLEncoding.DecodeString(env.Payload); err != nil {
			return ""
		}
	}
	st, err := attest.ParseStatement(p)
	if err != nil {
		return ""
	}
	return st.PredicateType
}
