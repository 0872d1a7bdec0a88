package main

import (
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"io"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/spf13/cobra"
)

func init() { register(newInitCmd); register(newKeyCmd) }

func newInitCmd() *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "init",
		Short: "Create the data directory, config, keys, token and trust policy (never overwrites keys)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if err := refuseWhileDaemon(cmd.Context(), dir, "init"); err != nil {
				return err
			}
			res, err := node.Init(dir, node.InitOptions{Name: name})
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "data directory %s\n", res.Dir)
				for _, f := range res.Created {
					fmt.Fprintf(w, "  created  %s\n", f)
				}
				for _, f := range res.Existing {
					fmt.Fprintf(w, "  kept     %s\n", f)
				}
			})
		},
	}
	c.Flags().StringVar(&name, "name", "", "node name (default: host name); used in the log origin and key names")
	return c
}

func newKeyCmd() *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Show the node's keys; generate keys for approvers"}
	var alg, out string
	gen := &cobra.Command{
		Use:   "generate --out FILE [--alg ed25519|ecdsa-p256]",
		Short: "Write a new attestation key pair: FILE (private, PKCS#8 PEM, 0600) and FILE.pub; never overwrites",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("key generate: --out FILE is required")
			}
			priv, pub, err := attest.GenerateKey(alg)
			if err != nil {
				return usagef("key generate: %v", err)
			}
			if err := attest.WriteKeyFiles(out, out+".pub", priv, pub); err != nil {
				return err
			}
			v, err := attest.LoadVerifier(pub)
			if err != nil {
				return err
			}
			res := map[string]string{"private_key": out, "public_key": out + ".pub", "key_id": v.KeyID(), "algorithm": v.Algorithm()}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "%s  %s (%s, public key in %s.pub)\n", v.KeyID(), out, v.Algorithm(), out)
			})
		},
	}
	gen.Flags().StringVar(&alg, "alg", attest.AlgEd25519, "key algorithm: ed25519 or ecdsa-p256")
	gen.Flags().StringVarP(&out, "output", "o", "", "private key FILE to create (the public key goes to FILE.pub)")
	cli.Renamed(gen.Flags(), "out", "output")
	c.AddCommand(gen)
	c.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the node's public keys: attestation key (PEM + key id), log note key, witness key, Nix key",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			pk, err := node.ReadPublicKeys(dir)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), pk, func(w io.Writer) {
				fmt.Fprintf(w, "node:             %s\n", pk.Name)
				fmt.Fprintf(w, "attestation key:  %s\n%s", pk.AttestKeyID, pk.AttestPEM)
				fmt.Fprintf(w, "log origin:       %s\n", pk.LogOrigin)
				fmt.Fprintf(w, "log key:          %s\n", pk.LogKey)
				fmt.Fprintf(w, "witness key:      %s\n", pk.WitnessKey)
				fmt.Fprintf(w, "nix key:          %s\n", pk.NixKey)
			})
		},
	})
	return c
}
