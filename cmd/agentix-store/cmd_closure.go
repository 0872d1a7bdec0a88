package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/internal/progress"
	"github.com/agentix/agentix-store/store"
	"github.com/spf13/cobra"
)

func init() { register(newClosureCmd) }

func newClosureCmd() *cobra.Command {
	c := &cobra.Command{Use: "closure", Short: "Nix system closures: import, verify, list, diff, export, attest"}
	c.AddCommand(newClosureImportCmd(), newClosureExportCmd(), newClosureVerifyCmd(),
		newClosureLsCmd(), newClosureDiffCmd(), newClosureAttestCmd())
	return c
}

func newClosureImportCmd() *cobra.Command {
	var from, car string
	var jobs int
	c := &cobra.Command{
		Use:   "import [--from file:///DIR|http://URL] STORE_PATH | import --car FILE|-",
		Short: "Import the closure of a store path from the local Nix or a binary cache, or a closure CAR; print the Closure CID",
		Args: func(cmd *cobra.Command, args []string) error {
			if car != "" {
				if len(args) != 0 {
					return usagef("closure import --car takes no STORE_PATH")
				}
				return nil
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if car == "" && a.node != "" && (from == "" || strings.HasPrefix(from, "file:")) {
				return usagef("closure import --node: the remote node reads the store path from its own Nix (or a file:// cache on its own disk); import from an http(s) binary cache with --from, or export the closure here and import it with --car")
			}
			be, err := a.backend(ctx)
			if err != nil {
				return err
			}
			defer be.Close()
			if car != "" {
				r, _, err := openInput(car)
				if err != nil {
					return err
				}
				defer r.Close()
				res, err := be.ClosureImportCAR(ctx, bufio.NewReaderSize(r, 1<<20))
				if err != nil {
					return err
				}
				return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "%s  %s (%d paths, verified)\n", res.Closure, res.Root, res.Paths)
				})
			}
			if _, set := os.LookupEnv("GOMEMLIMIT"); !set && !api.Remote(be) {
				debug.SetMemoryLimit(closure.ImportMemoryLimit)
			}
			report, done := progress.Func("import", a.json)
			res, err := be.ClosureImport(ctx, api.ClosureImportRequest{StorePath: args[0], From: from, Jobs: jobs}, report)
			done()
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "%s  %s (%d paths, %d NAR bytes, %d reused)\n", res.Closure, res.Root, res.Paths, res.NarBytes, res.Reused)
			})
		},
	}
	c.Flags().StringVar(&from, "from", "", "binary cache to import from (file:///DIR or http(s)://URL) instead of the local Nix")
	c.Flags().StringVar(&car, "car", "", "import a closure CAR written by `closure export` (FILE or - for stdin)")
	c.Flags().IntVar(&jobs, "jobs", 2, "NARs imported at once")
	return c
}

func newClosureExportCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "export [-o FILE] CLOSURE_CID",
		Short: "Write a whole closure (records and NARs) as one CAR (stdout unless -o)",
		Args:  cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriterSize(w, 1<<20)
			if err := b.ClosureExport(cmd.Context(), bw, id); err != nil {
				return err
			}
			return bw.Flush()
		}),
	}
	c.Flags().StringVarP(&out, "output", "o", "", "output file")
	return c
}

func newClosureVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify CLOSURE_CID",
		Short: "Re-check every NAR hash and size, NAR structure and completeness of a stored closure",
		Args:  cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			res, err := b.ClosureVerify(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "ok  %s  %s (%d paths, %d NAR bytes)\n", res.Closure, res.Root, res.Paths, res.NarBytes)
			})
		}),
	}
}

func newClosureLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls [CLOSURE_CID]",
		Short: "List imported closures, or the store paths of one closure",
		Args:  cobra.MaximumNArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			if len(args) == 0 {
				list, err := b.Closures(cmd.Context())
				if err != nil {
					return err
				}
				return a.emit(cmd.OutOrStdout(), list, func(w io.Writer) {
					for _, s := range list {
						fmt.Fprintf(w, "%s  %s  %d paths  %d bytes  %s\n", s.CID, s.Root, s.Paths, s.NarBytes, s.Imported.Format(time.RFC3339))
					}
				})
			}
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			out, err := b.ClosureEntries(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				for _, e := range out {
					fmt.Fprintf(w, "%s  %s  %d\n", e.Path, e.NarHash, e.NarSize)
				}
			})
		}),
	}
}

func newClosureDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff CLOSURE_A CLOSURE_B",
		Short: "Store paths added, removed and changed from closure A to closure B",
		Args:  exactArgs(2),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			ca, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			cb, err := store.ParseCID(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			d, err := b.ClosureDiff(cmd.Context(), ca, cb)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), d, func(w io.Writer) {
				for _, p := range d.Removed {
					fmt.Fprintf(w, "- %s\n", p)
				}
				for _, p := range d.Added {
					fmt.Fprintf(w, "+ %s\n", p)
				}
				for _, c := range d.Changed {
					if c.From == c.To {
						fmt.Fprintf(w, "~ %s (same path, different NAR)\n", c.From)
					} else {
						fmt.Fprintf(w, "~ %s: %s -> %s\n", c.Name, c.From, c.To)
					}
				}
			})
		}),
	}
}

func newClosureAttestCmd() *cobra.Command {
	var commit, keyPath, workspace, attr, host string
	var applies []string
	var generation int64
	c := &cobra.Command{
		Use:   "attest [--workspace WS [--attr ATTR | --host H]] [--generation N] CLOSURE_CID",
		Short: "Verify a stored closure, then sign a running-config/v2 for it (with --workspace: the configuration chain from the workspace's genesis and approved applies, checked with real Nix to evaluate to the closure), store and log it; print its id and log index",
		Long: `Verify a stored closure and attest that the node runs it (running-config/v2).

With --workspace (an Agentix workspace that is a git-repo flake), the
attestation carries the configuration chain: the workspace's source state
(its NAR hash as Nix computes locked.narHash, stored so auditors can fetch
it), the previous running-config of the workspace or its genesis (recorded
now unless 'config genesis' recorded it before), the apply attestations
ingested since then, and the toplevel evaluated from the source with real
Nix, whose outPath must be the closure's root (else nothing is attested).
A source that differs from the previous state plus the approved patches is
attested anyway, with a warning: the auditor judges.

Without --workspace the closure is attested with its configuration
unproven. --commit and --apply write the old running-config/v1 (deprecated).`,
		Args: cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			if workspace == "" && (attr != "" || host != "") {
				return usagef("--attr and --host need --workspace")
			}
			if workspace != "" && (commit != "" || len(applies) > 0) {
				return usagef("--commit and --apply (running-config/v1) cannot be combined with --workspace")
			}
			if workspace != "" {
				if a.node != "" {
					return usagef("closure attest --workspace with --node: the workspace is read (and evaluated with Nix) on the node's own disk; run closure attest on the node")
				}
				if workspace, err = filepath.Abs(workspace); err != nil {
					return err
				}
			}
			var signer *attest.Signer
			if keyPath != "" {
				if signer, err = attest.LoadSigner(keyPath); err != nil {
					return err
				}
			}
			if commit != "" || len(applies) > 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "agentix-store: warning: --commit and --apply write a running-config/v1, which proves no configuration; use --workspace")
			}
			res, err := b.AttestRunning(cmd.Context(), id, signer, api.RunningRequest{Workspace: workspace, Attr: attr, Host: host, Generation: generation, Commit: commit, Applies: applies})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "agentix-store: warning: %s\n", w)
			}
			out := res
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "%s\t%d\n", out.ID, out.LogIndex)
				if out.Unproven != "" {
					fmt.Fprintf(w, "configuration unproven: %s\n", out.Unproven)
				}
				if l := out.Link; l != nil {
					ext := "genesis " + l.Source.NarHash
					if l.Extends.RunningConfig != "" {
						ext = "running-config " + l.Extends.RunningConfig
					} else if l.Extends.Genesis != nil {
						ext = "genesis " + l.Extends.Genesis.NarHash
					}
					fmt.Fprintf(w, "source %s extends %s with %d apply(ies); %s evaluates to %s\n", l.Source.NarHash, ext, len(l.Applies), l.Toplevel.Attr, l.Toplevel.OutPath)
				}
			})
		}),
	}
	c.Flags().StringVar(&workspace, "workspace", "", "Agentix workspace (a git-repo flake) the system was built from")
	c.Flags().StringVar(&attr, "attr", "", "flake attribute of the toplevel (default nixosConfigurations.<host>.config.system.build.toplevel)")
	c.Flags().StringVar(&host, "host", "", "nixosConfigurations entry (default: the node's name)")
	c.Flags().StringVar(&commit, "commit", "", "deprecated (running-config/v1): configuration commit the system was built from")
	c.Flags().StringArrayVar(&applies, "apply", nil, "deprecated (running-config/v1): id of an apply/v1 attestation included in the configuration")
	c.Flags().Int64Var(&generation, "generation", 0, "NixOS system generation number")
	c.Flags().StringVar(&keyPath, "key", "", "attestation private key PEM (default: the node's <dir>/"+node.AttestKeyFile+"; not through a daemon, which signs with its own)")
	return c
}
