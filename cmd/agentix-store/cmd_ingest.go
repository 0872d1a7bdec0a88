package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"github.com/agentix/agentix-store/internal/progress"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/node"
)

func init() { register(newIngestCmd) }

func newIngestCmd() *cobra.Command {
	var (
		policyPath, trustPath, name string
		verify, watch, noAttest     bool
		interval                    time.Duration
	)
	c := &cobra.Command{
		Use:   "ingest WORKSPACE",
		Short: "Ingest WORKSPACE/.agentix/audit.jsonl and its proposals, check the safety boundary, attest",
		Long: `Ingest stores the audit log's exact bytes (incrementally: only lines after the
last ingested snapshot are read), every proposal patch a line names, and
attests the result: audit-log/v1 for the snapshot with the boundary verdict,
proposal/v1 and apply/v1 for the lines that qualify.

A file that is not a continuation of the last snapshot (truncated, a line
edited, removed or reordered) is refused: both versions are kept and the
first differing line is reported. By default the continuation check reads
only the last ingested line; --verify re-reads the whole ingested prefix.

Approvals (rule 2) are the approval/v1 attestations in this node's index
whose signatures verify with the approver keys of the trust policy.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return usagef("ingest: --node: the workspace is read from the node's own disk, so a local workspace cannot be ingested by a remote node; run ingest on the node (it goes through its daemon when one runs)")
			}
			ws, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(ws, filepath.FromSlash(audit.AuditLogPath))); err != nil {
				return usagef("ingest: %s is not an Agentix workspace: %v", args[0], err)
			}
			req := api.IngestRequest{Workspace: ws, Name: name, Verify: verify, NoAttest: noAttest}
			if policyPath != "" {
				if _, err := audit.LoadPolicy(policyPath); err != nil {
					return usagef("%v", err)
				}
				if req.Policy, err = os.ReadFile(policyPath); err != nil {
					return err
				}
			}
			if trustPath != "" {
				if _, err := attest.LoadPolicy(trustPath); err != nil {
					if _, berr := audit.LoadPolicy(trustPath); berr == nil {
						return usagef("--policy %s is a boundary policy: pass it with --boundary (--policy names the trust policy, as in agentix-verify)", trustPath)
					}
					return usagef("trust policy: %v", err)
				}
				if req.TrustPolicy, err = os.ReadFile(trustPath); err != nil {
					return err
				}
			}
			be, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer be.Close()
			out := cmd.OutOrStdout()
			if !watch {
				report, done := progress.Func("ingest", a.json)
				r, err := be.Ingest(cmd.Context(), req, report)
				done()
				if r != nil && (err == nil || errors.Is(err, audit.ErrNotAppendOnly)) {
					if eerr := a.emit(out, r, func(w io.Writer) { printIngest(w, r) }); eerr != nil {
						return eerr
					}
				}
				if err != nil {
					return err
				}
				return boundaryErr(r.Boundary)
			}
			// --watch: one line of JSON (or a human block) per new
			// snapshot or new verdict; quiet while nothing changes.
			enc := json.NewEncoder(out)
			return watchIngest(cmd.Context(), ws, interval, func(ctx context.Context) error {
				r, err := be.Ingest(ctx, req, nil)
				if ctx.Err() != nil {
					return nil
				}
				if r != nil && (err == nil || errors.Is(err, audit.ErrNotAppendOnly)) && (!r.Unchanged || len(r.Attestations) > 0) {
					if a.json {
						if eerr := enc.Encode(r); eerr != nil {
							return eerr
						}
					} else {
						printIngest(out, r)
					}
				}
				return err
			})
		},
	}
	c.Flags().StringVar(&policyPath, "boundary", "", "boundary policy FILE (tightens the built-in policy)")
	c.Flags().StringVar(&trustPath, "policy", "", "trust policy FILE naming the approver keys (default <dir>/"+node.TrustPolicyFile+")")
	cli.Renamed(c.Flags(), "trust-policy", "policy")
	c.Flags().StringVar(&name, "name", "", "workspace name in the store (default: its absolute path)")
	c.Flags().BoolVar(&verify, "verify", false, "re-read and check the whole already-ingested prefix")
	c.Flags().BoolVar(&watch, "watch", false, "keep following the audit log, ingesting and attesting as it grows")
	c.Flags().DurationVar(&interval, "interval", time.Second, "with --watch, how often to look for new lines")
	c.Flags().BoolVar(&noAttest, "no-attest", false, "store and check, but publish no attestations")
	return c
}

// watchIngest polls the audit log's size and modification time and ingests
// whenever either changes, until ctx is cancelled (SIGINT, SIGTERM): then
// it returns nil. A refused (tampered) version ends the watch with its
// error. Polling, not inotify: it works the same on every filesystem.
func watchIngest(ctx context.Context, ws string, every time.Duration, run func(context.Context) error) error {
	path := filepath.Join(ws, filepath.FromSlash(audit.AuditLogPath))
	var last int64 = -1
	var lastMod time.Time
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Size() != last || !fi.ModTime().Equal(lastMod) {
			if err := run(ctx); err != nil {
				return err
			}
			last, lastMod = fi.Size(), fi.ModTime()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// boundaryErr is nil when the boundary held, else an error naming every
// violation (exit status 1).
func boundaryErr(b *audit.Result) error {
	if b == nil || b.Passed {
		return nil
	}
	return fmt.Errorf("safety boundary violated (%d violation(s)):\n%w", len(b.Violations), b.Err())
}

func printIngest(w io.Writer, r *api.IngestView) {
	switch {
	case r.Evidence != nil:
		fmt.Fprintf(w, "REFUSED %s: line %d %s; accepted snapshot %s kept, this version stored as %s\n",
			r.Workspace, r.Evidence.Line, r.Evidence.Kind, r.Evidence.Accepted, r.Evidence.Found)
	case r.Unchanged:
		fmt.Fprintf(w, "unchanged %s: %d lines, snapshot %s\n", r.Workspace, r.Lines, r.Snapshot)
	default:
		fmt.Fprintf(w, "ingested %s: %d new lines, %d lines (%d bytes), root %s\nsnapshot %s\n",
			r.Workspace, r.NewLines, r.Lines, r.Size, r.Root, r.Snapshot)
	}
	if r.Pending > 0 {
		fmt.Fprintf(w, "%d bytes of an incomplete last line not ingested yet\n", r.Pending)
	}
	if r.Boundary != nil {
		printBoundary(w, r.Boundary)
	}
	for _, id := range r.Attestations {
		fmt.Fprintf(w, "attestation %s\n", id)
	}
}

func printBoundary(w io.Writer, b *audit.Result) {
	mode := "approvers"
	if b.SingleOperator {
		mode = "single-operator (the human apply line stands as the approval)"
	}
	verdict := "HELD"
	if !b.Passed {
		verdict = "VIOLATED"
	}
	fmt.Fprintf(w, "boundary %s over %d lines, %d applies; policy %s, %s\n", verdict, b.Lines, b.Applies, b.Policy[:12], mode)
	for i := range b.Violations {
		fmt.Fprintf(w, "  violation: %v\n", &b.Violations[i])
	}
	for _, f := range b.Findings {
		fmt.Fprintf(w, "  finding: line %d: %s\n", f.Line, f.Message)
	}
}
