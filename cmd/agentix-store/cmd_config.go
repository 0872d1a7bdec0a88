package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/agentix/agentix-store/internal/node"
	"github.com/spf13/cobra"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func init() { register(newConfigCmd) }

func newConfigCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Show or change the node's config (witnesses of its log, peers it witnesses); restart the daemon to apply"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print config.json",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			cfg, err := node.LoadConfig(dir)
			if err != nil {
				return err
			}
			a.json = true
			return a.emit(cmd.OutOrStdout(), cfg, nil)
		},
	}
	var wurl, wkey string
	witness := &cobra.Command{
		Use:   "witness-add --url URL --key VKEY",
		Short: "Ask the witness at URL (its tlog-witness prefix, e.g. http://peer:7171/log) to cosign each new checkpoint; VKEY is its cosignature key",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := url.Parse(wurl)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--url %q: want http(s)://host:port/prefix", wurl)
			}
			if _, err := fnote.NewVerifierForCosignatureV1(wkey); err != nil {
				return usagef("--key %q: not a cosignature verifier key: %v", wkey, err)
			}
			return updateConfig(cmd, func(c *node.Config) error {
				for _, w := range c.Witnesses {
					if w.URL == wurl {
						return fmt.Errorf("witness %s is already configured", wurl)
					}
				}
				c.Witnesses = append(c.Witnesses, node.Witness{URL: strings.TrimSuffix(wurl, "/"), Key: wkey})
				return nil
			})
		},
	}
	witness.Flags().StringVar(&wurl, "url", "", "witness URL prefix (add-checkpoint is POSTed to URL/add-checkpoint)")
	witness.Flags().StringVar(&wkey, "key", "", "the witness's cosignature verifier key (its `key show` witness key)")
	var porigin, pkey, purl string
	peer := &cobra.Command{
		Use:   "peer-add --origin ORIGIN --key VKEY [--url URL]",
		Short: "Witness the log ORIGIN, whose checkpoints VKEY signs (cosign its add-checkpoint requests)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := note.NewVerifier(pkey)
			if err != nil {
				return usagef("--key %q: not a note verifier key: %v", pkey, err)
			}
			if porigin == "" {
				porigin = v.Name()
			}
			return updateConfig(cmd, func(c *node.Config) error {
				for _, p := range c.Peers {
					if p.Origin == porigin {
						return fmt.Errorf("peer log %s is already configured", porigin)
					}
				}
				c.Peers = append(c.Peers, node.Peer{Origin: porigin, Key: pkey, URL: purl})
				return nil
			})
		},
	}
	peer.Flags().StringVar(&porigin, "origin", "", "the peer log's origin line (default: the key's name)")
	peer.Flags().StringVar(&pkey, "key", "", "the peer log's note verifier key (its `key show` log key)")
	peer.Flags().StringVar(&purl, "url", "", "the peer node's URL (informational)")
	apply := &cobra.Command{
		Use:   "apply FILE|-",
		Short: "Set the config fields FILE names (listen, chunker, sync_writes, nix_compression, witnesses, peers), as the NixOS module does; keys are never touched",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := openInput(args[0])
			if err != nil {
				return err
			}
			raw, err := io.ReadAll(io.LimitReader(r, 1<<20))
			r.Close()
			if err != nil {
				return err
			}
			var over struct {
				Listen         *string         `json:"listen"`
				Chunker        *string         `json:"chunker"`
				SyncWrites     *bool           `json:"sync_writes"`
				NixCompression *string         `json:"nix_compression"`
				Witnesses      *[]node.Witness `json:"witnesses"`
				Peers          *[]node.Peer    `json:"peers"`
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&over); err != nil {
				return usagef("%s: %v", args[0], err)
			}
			if over.Witnesses != nil {
				for _, w := range *over.Witnesses {
					if _, err := fnote.NewVerifierForCosignatureV1(w.Key); err != nil {
						return usagef("%s: witness %s: key %q: %v", args[0], w.URL, w.Key, err)
					}
				}
			}
			if over.Peers != nil {
				for i, p := range *over.Peers {
					v, err := note.NewVerifier(p.Key)
					if err != nil {
						return usagef("%s: peer %s: key %q: %v", args[0], p.Origin, p.Key, err)
					}
					if p.Origin == "" {
						(*over.Peers)[i].Origin = v.Name()
					}
				}
			}
			return updateConfig(cmd, func(c *node.Config) error {
				if over.Listen != nil {
					c.Listen = *over.Listen
				}
				if over.Chunker != nil {
					c.Chunker = *over.Chunker
				}
				if over.SyncWrites != nil {
					c.SyncWrites = *over.SyncWrites
				}
				if over.NixCompression != nil {
					c.NixCompression = *over.NixCompression
				}
				if over.Witnesses != nil {
					c.Witnesses = *over.Witnesses
				}
				if over.Peers != nil {
					c.Peers = *over.Peers
				}
				return nil
			})
		},
	}
	c.AddCommand(show, witness, peer, apply, newConfigGenesisCmd())
	return c
}

func updateConfig(cmd *cobra.Command, fn func(*node.Config) error) error {
	dir, err := a.dir()
	if err != nil {
		return err
	}
	cfg, err := node.UpdateConfig(dir, fn)
	if err != nil {
		return err
	}
	return a.emit(cmd.OutOrStdout(), cfg, func(w io.Writer) {
		fmt.Fprintf(w, "%s: %d witnesses, %d peer logs (restart the daemon to apply)\n", dir, len(cfg.Witnesses), len(cfg.Peers))
	})
}

func newConfigGenesisCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "genesis WORKSPACE",
		Short: "Record the workspace's current source (a git-repo flake) as the genesis S0 of its configuration chain: its NAR is stored and pinned; the first closure attest --workspace does this when nothing is recorded",
		Args:  exactArgs(1),
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
			g, err := n.RecordGenesis(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), g, func(w io.Writer) {
				fmt.Fprintf(w, "genesis of %s: %s (rev %s), NAR %s, recorded at log size %d\n", g.Workspace, g.Source.NarHash, orNone(g.Source.Rev), g.Source.NAR, g.Since)
			})
		}),
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
