package main

import (
	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/verify"
)

func init() { register(newLogCmd) }

func newLogCmd() *cobra.Command {
	var o verify.LogOptions
	c := &cobra.Command{
		Use:   "log URL|DIR --policy TRUST",
		Short: "Check a tlog-tiles log against the checkpoints this auditor accepted before",
		Long: `log reads any C2SP tlog-tiles log, over http(s) (for a node daemon:
http://HOST:PORT/log/) or from a directory of static tiles, and checks its
checkpoint: signed by the key the policy names for its origin, with the
witness quorum; the same root as any checkpoint of that size accepted before
(else split view); not smaller than the largest accepted (else rollback); and
consistent with it by a consistency proof built from the log's tiles. The
checkpoint is then remembered in the auditor state directory.

--full also fetches every entry, verifies each as an attestation
(signatures, threshold, statement, predicate schema) on all cores, and
recomputes the root from the entries.`,
		Args: oneArg("URL|DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPolicy("log")
			if err != nil {
				return err
			}
			st, err := openState()
			if err != nil {
				return err
			}
			o.State = st
			src, err := verify.OpenLogSource(args[0], httpClient)
			if err != nil {
				return &usageError{Msg: err.Error()}
			}
			r, _ := verify.CheckLog(cmd.Context(), src, p, args[0], o)
			return emit(cmd, r)
		},
	}
	policyFlag(c)
	c.Flags().BoolVar(&o.Full, "full", false, "replay every entry: verify each attestation and recompute the root")
	c.Flags().IntVar(&o.Workers, "workers", 0, "parallel verifiers for --full (default: all cores)")
	return c
}
