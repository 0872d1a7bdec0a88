package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/verify"
)

func init() { register(newBundleCmd) }

func readAllStdin() ([]byte, error) { return io.ReadAll(os.Stdin) }

func newBundleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bundle FILE --policy TRUST",
		Short: "Verify an offline bundle: signatures and threshold, schemas, inclusion proof, checkpoint and witnesses, CAR blocks",
		Long: `bundle verifies, offline, a bundle written by 'agentix-store bundle':
the envelope's signatures against the policy's keys and threshold, the
in-toto statement and the predicate's JSON Schema, the inclusion proof against
the checkpoint, the checkpoint's signature by the log's key and its witness
quorum, and, when the bundle carries a CAR, that every block hashes to its
CID. FILE may be - for standard input.`,
		Args: oneArg("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPolicy("bundle")
			if err != nil {
				return err
			}
			b, err := readInput(args[0])
			if err != nil {
				return err // exit 3: could not check
			}
			return emit(cmd, verify.Bundle(b, p, args[0]))
		},
	}
	policyFlag(c)
	return c
}
