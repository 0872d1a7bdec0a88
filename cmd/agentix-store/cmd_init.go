package main

import (
	"fmt"
	"io"

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
	c := &cobra.Command{Use: "key", Short: "Show the node's keys"}
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
