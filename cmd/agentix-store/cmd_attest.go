package main

import (
	"encoding/hex"
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"io"
	"os"
	"path/filepath"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/schemas"
)

func init() {
	register(newAttestCmd)
	register(newApproveCmd)
	register(newAttestationCmd)
	register(newBundleCmd)
}

// readEnvelopeFile reads one envelope file ("-" is stdin).
func readEnvelopeFile(name string) ([]byte, error) {
	r, _, err := openInput(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, attest.MaxEnvelopeSize+1))
	if err != nil {
		return nil, err
	}
	return b, nil
}

type publishResult struct {
	ID       string `json:"id"`
	LogIndex uint64 `json:"log_index"`
	Existing bool   `json:"existing,omitempty"`
}

func newAttestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "attest ENVELOPE|-",
		Short: "Publish a DSSE envelope: store its exact bytes as a block, append them to the log, index it; print id and log index",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readEnvelopeFile(args[0])
			if err != nil {
				return err
			}
			be, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer be.Close()
			p, err := be.Publish(cmd.Context(), b)
			if err != nil {
				return err
			}
			res := publishResult{ID: p.ID, LogIndex: p.LogIndex, Existing: p.Existing}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintf(w, "%s\t%d\n", res.ID, res.LogIndex) })
		},
	}
}

func newApproveCmd() *cobra.Command {
	var keyPath, in, out, sha, proposal, comment string
	c := &cobra.Command{
		Use:   "approve PATCH_CID [--key FILE] [--in ENVELOPE] [--out FILE]",
		Short: "Sign an approval/v1 of a stored patch, or add this key's signature to an existing approval envelope",
		Long: `approve builds the approval/v1 statement for the Patch record PATCH_CID (its
subject digest is the patch bytes' sha256, read from the record, or --sha256)
and signs it with --key (default: the node's attestation key). With --in, the
signature is added to that envelope instead, so approvers can pass one envelope
around; "approve merge" combines envelopes signed separately. The envelope is
written to --out (default stdout); publish it with "agentix-store attest".`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pc, err := cid.Decode(args[0])
			if err != nil {
				return usagef("PATCH_CID %q: %v", args[0], err)
			}
			var env *attest.Envelope
			if in != "" {
				b, err := readEnvelopeFile(in)
				if err != nil {
					return err
				}
				if env, err = attest.ParseEnvelope(b); err != nil {
					return fmt.Errorf("%s: %w", in, err)
				}
			}
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if keyPath == "" {
				keyPath = filepath.Join(dir, node.AttestKeyFile)
			}
			signer, err := attest.LoadSigner(keyPath)
			if err != nil {
				return err
			}
			if env == nil {
				if sha == "" {
					be, err := a.backend(ctx)
					if err != nil {
						return err
					}
					data, err := be.GetBlock(ctx, pc)
					be.Close()
					if err == nil {
						var blk blocks.Block
						if blk, err = blocks.NewBlockWithCid(data, pc); err == nil {
							var p schemas.Patch
							if err = schemas.DecodeBlock(blk, &p); err == nil {
								sha = hex.EncodeToString(p.Sha256)
							}
						}
					}
					if err != nil {
						return fmt.Errorf("patch %s: %w (or pass --sha256)", pc, err)
					}
				}
				sum, err := hex.DecodeString(sha)
				if err != nil || len(sum) != 32 {
					return usagef("--sha256 %q is not 64 hex digits", sha)
				}
				_, payload, err := attest.NewStatement(attest.PredicateApproval,
					[]attest.ResourceDescriptor{attest.Subject(pc, sum, "")},
					attest.ApprovalPredicate{Patch: attest.PatchRef{CID: pc.String(), SHA256: sha}, Proposal: proposal, Comment: comment})
				if err != nil {
					return err
				}
				if env, err = attest.SignEnvelope(ctx, attest.PayloadType, payload, signer); err != nil {
					return err
				}
			} else if env, err = attest.AddSignatures(ctx, env, signer); err != nil {
				return err
			}
			return writeEnvelope(cmd, env, out)
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "private key PEM file (default: <dir>/"+node.AttestKeyFile+")")
	c.Flags().StringVar(&in, "in", "", "existing approval envelope to add a signature to")
	c.Flags().StringVarP(&out, "output", "o", "", "write the envelope to FILE (default stdout)")
	cli.Renamed(c.Flags(), "out", "output")
	c.Flags().StringVar(&sha, "sha256", "", "sha256 of the patch bytes (default: from the stored Patch record)")
	c.Flags().StringVar(&proposal, "proposal", "", "the proposal/v1 attestation id being approved")
	c.Flags().StringVar(&comment, "comment", "", "free-text comment")

	var mergeOut string
	merge := &cobra.Command{
		Use:   "merge ENVELOPE...",
		Short: "Merge approval envelopes over the same statement into one envelope with all their signatures",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var envs []*attest.Envelope
			for _, f := range args {
				b, err := readEnvelopeFile(f)
				if err != nil {
					return err
				}
				e, err := attest.ParseEnvelope(b)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				envs = append(envs, e)
			}
			m, err := attest.MergeEnvelopes(envs...)
			if err != nil {
				return err
			}
			return writeEnvelope(cmd, m, mergeOut)
		},
	}
	merge.Flags().StringVarP(&mergeOut, "output", "o", "", "write the envelope to FILE (default stdout)")
	cli.Renamed(merge.Flags(), "out", "output")
	c.AddCommand(merge)
	return c
}

func writeEnvelope(cmd *cobra.Command, env *attest.Envelope, out string) error {
	b, err := attest.MarshalEnvelope(env)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if out == "" || out == "-" {
		_, err = cmd.OutOrStdout().Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

func newAttestationCmd() *cobra.Command {
	c := &cobra.Command{Use: "attestation", Short: "Find published attestations"}
	var q attest.Query
	ls := &cobra.Command{
		Use:     "ls [--subject CID] [--sha256 HEX] [--name NAME] [--predicate-type URI] [--signer KEYID]",
		Aliases: []string{"search"},
		Short:   "List attestations (in log order) matching every given criterion",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer be.Close()
			rs, err := be.Attestations(cmd.Context(), q)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), rs, func(w io.Writer) {
				for _, r := range rs {
					fmt.Fprintf(w, "%s\t%d\t%s\n", r.ID, r.LogIndex, r.PredicateType)
				}
			})
		},
	}
	ls.Flags().StringVar(&q.Subject, "subject", "", "subject CID")
	ls.Flags().StringVar(&q.SHA256, "sha256", "", "subject sha256 (hex)")
	ls.Flags().StringVar(&q.Name, "name", "", "subject name (e.g. a store path)")
	ls.Flags().StringVar(&q.PredicateType, "predicate-type", "", "predicate type URI")
	ls.Flags().StringVar(&q.Signer, "signer", "", "key id named by a signature")
	ls.Flags().IntVar(&q.Limit, "limit", 0, "at most this many (0: all)")
	c.AddCommand(ls)
	return c
}

func newBundleCmd() *cobra.Command {
	var withCAR bool
	c := &cobra.Command{
		Use:   "bundle ATTESTATION_ID [--car]",
		Short: "Write the offline bundle of an attestation (JSON) to stdout",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cid.Decode(args[0])
			if err != nil {
				return usagef("ATTESTATION_ID %q: %v", args[0], err)
			}
			be, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer be.Close()
			b, err := be.Bundle(cmd.Context(), id, withCAR)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	c.Flags().BoolVar(&withCAR, "car", false, "include a CAR of the envelope block and the subjects' DAGs")
	return c
}
