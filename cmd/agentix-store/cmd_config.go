package main

import (
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/node"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/spf13/cobra"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func init() { register(newConfigCmd) }

func newConfigCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Show or change the node's config (witnesses of its log, peers it witnesses: restart the daemon to apply; workspaces and the running system it follows: applied at once)"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print config.json (runningSystem and workspaces with their effective values)",
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
			// The effective values: what the daemon follows.
			cfg.RunningSystem = cfg.RunningSystemPath()
			if cfg.Workspaces == nil {
				cfg.Workspaces = []node.WorkspaceConfig{}
			}
			a.json = true
			return a.emit(cmd.OutOrStdout(), cfg, nil)
		},
	}
	var wurl, wkey string
	witness := &cobra.Command{
		Use:   "witness-add --url URL --vkey VKEY",
		Short: "Ask the witness at URL (its tlog-witness prefix, e.g. http://peer:7171/log) to cosign each new checkpoint; VKEY is its cosignature key",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := url.Parse(wurl)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--url %q: want http(s)://host:port/prefix", wurl)
			}
			if _, err := fnote.NewVerifierForCosignatureV1(wkey); err != nil {
				return usagef("--vkey %q: not a cosignature verifier key: %v", wkey, err)
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
	witness.Flags().StringVar(&wkey, "vkey", "", "the witness's cosignature verifier key (its `key show` witness key)")
	cli.Renamed(witness.Flags(), "key", "vkey")
	var porigin, pkey, purl string
	peer := &cobra.Command{
		Use:   "peer-add [--origin ORIGIN] --vkey VKEY [--url URL]",
		Short: "Witness the log ORIGIN, whose checkpoints VKEY signs (cosign its add-checkpoint requests)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := note.NewVerifier(pkey)
			if err != nil {
				return usagef("--vkey %q: not a note verifier key: %v", pkey, err)
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
	peer.Flags().StringVar(&pkey, "vkey", "", "the peer log's note verifier key (its `key show` log key)")
	cli.Renamed(peer.Flags(), "key", "vkey")
	peer.Flags().StringVar(&purl, "url", "", "the peer node's URL (informational)")
	apply := &cobra.Command{
		Use:   "apply FILE|-",
		Short: "Set the config fields FILE names (listen, chunker, sync_writes, nix_compression, witnesses, peers, workspaces, runningSystem), as the NixOS module does; keys are never touched",
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
			over, err := parseConfigOverride(args[0], raw)
			if err != nil {
				return err
			}
			return updateConfig(cmd, func(c *node.Config) error {
				if over.Workspaces != nil {
					c.Workspaces = *over.Workspaces
				}
				if over.RunningSystem != nil {
					c.RunningSystem = *over.RunningSystem
				}
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
	c.AddCommand(show, witness, peer, apply, newConfigGenesisCmd(), newWorkspaceAddCmd(), newWorkspaceRmCmd())
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
		fmt.Fprintf(w, "%s: %d witnesses, %d peer logs (restart the daemon to apply); %d workspaces and the running system %s followed (a running daemon applies them at once)\n",
			dir, len(cfg.Witnesses), len(cfg.Peers), len(cfg.Workspaces), cfg.RunningSystemPath())
	})
}

// newWorkspaceAddCmd is `config workspace-add`.
func newWorkspaceAddCmd() *cobra.Command {
	var host, attr string
	c := &cobra.Command{
		Use:   "workspace-add PATH [--host H] [--attr A]",
		Short: "Follow the Agentix workspace PATH (a directory holding .agentix/): the daemon ingests it as Agentix appends and builds the running system's configuration chain from it; a running daemon starts at once",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := filepath.Abs(args[0])
			if err != nil {
				return usagef("workspace-add: %s: %v", args[0], err)
			}
			fi, err := os.Stat(ws)
			if err != nil {
				return usagef("workspace-add: %s is not an Agentix workspace: %v", ws, err)
			}
			if !fi.IsDir() {
				return usagef("workspace-add: %s is not an Agentix workspace: not a directory", ws)
			}
			if fi, err := os.Stat(filepath.Join(ws, ".agentix")); err != nil || !fi.IsDir() {
				return usagef("workspace-add: %s is not an Agentix workspace: it has no .agentix directory", ws)
			}
			return updateConfig(cmd, func(c *node.Config) error {
				for _, w := range c.Workspaces {
					if filepath.Clean(w.Path) == ws {
						return usagef("workspace-add: workspace %s is already configured", ws)
					}
				}
				c.Workspaces = append(c.Workspaces, node.WorkspaceConfig{Path: ws, Host: host, Attr: attr})
				return nil
			})
		},
	}
	c.Flags().StringVar(&host, "host", "", "the workspace's nixosConfigurations entry (default: the node's name)")
	c.Flags().StringVar(&attr, "attr", "", "flake attribute of the toplevel (default nixosConfigurations.<host>.config.system.build.toplevel)")
	return c
}

// newWorkspaceRmCmd is `config workspace-rm`.
func newWorkspaceRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workspace-rm PATH",
		Short: "Stop following the workspace PATH (what was ingested stays); a running daemon stops at once",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := filepath.Abs(args[0])
			if err != nil {
				return usagef("workspace-rm: %s: %v", args[0], err)
			}
			return updateConfig(cmd, func(c *node.Config) error {
				for i, w := range c.Workspaces {
					if filepath.Clean(w.Path) == ws {
						c.Workspaces = append(c.Workspaces[:i], c.Workspaces[i+1:]...)
						return nil
					}
				}
				return usagef("workspace-rm: workspace %s is not configured", ws)
			})
		},
	}
}

func newConfigGenesisCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "genesis WORKSPACE",
		Short: "Record the workspace's current source (a git-repo flake) as the genesis S0 of its configuration chain: its NAR is stored and pinned; the first closure attest --workspace does this when nothing is recorded",
		Args: func(cmd *cobra.Command, args []string) error {
			if err := exactArgs(1)(cmd, args); err != nil {
				return err
			}
			if a.node != "" {
				return usagef("config genesis with --node: the workspace is read on the node's own disk; run it on the node")
			}
			return nil
		},
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			ws, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			g, err := b.RecordGenesis(cmd.Context(), ws)
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

// configOverride is what `config apply` reads: the fields it names are set.
type configOverride struct {
	Listen         *string                 `json:"listen"`
	Chunker        *string                 `json:"chunker"`
	SyncWrites     *bool                   `json:"sync_writes"`
	NixCompression *string                 `json:"nix_compression"`
	Witnesses      *[]node.Witness         `json:"witnesses"`
	Peers          *[]node.Peer            `json:"peers"`
	Workspaces     *[]node.WorkspaceConfig `json:"workspaces"`
	RunningSystem  *string                 `json:"runningSystem"`
}

// parseConfigOverride reads a `config apply` input strictly (exact member
// names, no unknown or repeated member) and checks its keys and paths;
// every error is a usage error naming the input.
func parseConfigOverride(name string, raw []byte) (*configOverride, error) {
	var over configOverride
	if err := jsonv2.Unmarshal(raw, &over, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	if over.Witnesses != nil {
		for _, w := range *over.Witnesses {
			if _, err := fnote.NewVerifierForCosignatureV1(w.Key); err != nil {
				return nil, usagef("%s: witness %s: key %q: %v", name, w.URL, w.Key, err)
			}
		}
	}
	if over.Peers != nil {
		for i, p := range *over.Peers {
			v, err := note.NewVerifier(p.Key)
			if err != nil {
				return nil, usagef("%s: peer %s: key %q: %v", name, p.Origin, p.Key, err)
			}
			if p.Origin == "" {
				(*over.Peers)[i].Origin = v.Name()
			}
		}
	}
	if over.Workspaces != nil {
		seen := map[string]bool{}
		for i, w := range *over.Workspaces {
			if !filepath.IsAbs(w.Path) {
				return nil, usagef("%s: workspace %q: the path must be absolute", name, w.Path)
			}
			p := filepath.Clean(w.Path)
			if seen[p] {
				return nil, usagef("%s: workspace %s is listed twice", name, p)
			}
			seen[p] = true
			(*over.Workspaces)[i].Path = p
		}
	}
	if over.RunningSystem != nil && *over.RunningSystem != "" && !filepath.IsAbs(*over.RunningSystem) {
		return nil, usagef("%s: runningSystem %q: the path must be absolute", name, *over.RunningSystem)
	}
	return &over, nil
}
