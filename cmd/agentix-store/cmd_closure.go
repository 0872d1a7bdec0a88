package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/kv"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/internal/progress"
	"github.com/agentix/agentix-store/store"
	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

func init() { register(newClosureCmd) }

func newClosureCmd() *cobra.Command {
	c := &cobra.Command{Use: "closure", Short: "Nix system closures: import, verify, list, diff, export, attest"}
	c.AddCommand(newClosureImportCmd(), newClosureExportCmd(), newClosureVerifyCmd(),
		newClosureLsCmd(), newClosureDiffCmd(), newClosureAttestCmd())
	return c
}

// openForClosure opens the node for a closure command. The closure commands
// work on the data directory itself, not through a daemon's API, so while a
// daemon holds the directory they fail: the error says so and what to do.
func openForClosure() (*node.Node, error) {
	n, err := a.open(false)
	var le *kv.LockedError
	if errors.As(err, &le) {
		return nil, fmt.Errorf("%w; closure commands open the data directory directly (they do not go through the daemon's API): stop the daemon and run the command again (the daemon keeps serving imported closures to Nix at /nix/)", err)
	}
	return n, err
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
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
			ctx := cmd.Context()
			if car != "" {
				r, _, err := openInput(car)
				if err != nil {
					return err
				}
				defer r.Close()
				res, err := closure.ImportCAR(ctx, n.Store, n.DB, bufio.NewReaderSize(r, 1<<20))
				if err != nil {
					return err
				}
				return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "%s  %s (%d paths, verified)\n", res.Closure, res.Root, res.Paths)
				})
			}
			if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
				debug.SetMemoryLimit(closure.ImportMemoryLimit)
			}
			var src closure.Source = &closure.LocalNix{}
			if from != "" {
				bc, err := closure.NewBinaryCache(ctx, from, nil)
				if err != nil {
					return err
				}
				src = bc
			}
			var bar *progress.Bar
			res, err := closure.Import(ctx, n.Store, n.DB, src, args[0], closure.ImportOptions{
				Jobs: jobs,
				Progress: func(done, total int64) {
					if bar == nil {
						bar = progress.New(total, "import", a.json)
					}
					bar.Set(done)
				},
			})
			bar.Done()
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "%s  %s (%d paths, %d NAR bytes, %d reused)\n", res.Closure, res.Root, res.Paths, res.NarBytes, res.Reused)
			})
		}),
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
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
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
			if err := closure.ExportCAR(cmd.Context(), n.Store, id, bw); err != nil {
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
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			res, err := closure.Verify(cmd.Context(), n.Store, id)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "ok  %s  %s (%d paths, %d NAR bytes)\n", res.Closure, res.Root, res.Paths, res.NarBytes)
			})
		}),
	}
}

type lsEntry struct {
	Path    string   `json:"path"`
	NarHash string   `json:"narHash"`
	NarSize int64    `json:"narSize"`
	Refs    []string `json:"references"`
	Info    string   `json:"info"`
	NAR     string   `json:"nar"`
}

func newClosureLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls [CLOSURE_CID]",
		Short: "List imported closures, or the store paths of one closure",
		Args:  cobra.MaximumNArgs(1),
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
			if len(args) == 0 {
				list, err := closure.List(n.DB)
				if err != nil {
					return err
				}
				if list == nil {
					list = []closure.ClosureSummary{}
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
			_, entries, err := closure.Load(cmd.Context(), n.Store, id)
			if err != nil {
				return err
			}
			out := make([]lsEntry, len(entries))
			for i, e := range entries {
				out[i] = lsEntry{Path: e.Path, NarHash: e.NarHashString(), NarSize: e.NarSize, Refs: e.References, Info: e.Info.String(), NAR: e.NAR.String()}
				if out[i].Refs == nil {
					out[i].Refs = []string{}
				}
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
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
			ca, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			cb, err := store.ParseCID(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			d, err := closure.Diff(cmd.Context(), n.Store, ca, cb)
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
		RunE: onClosureNode(func(cmd *cobra.Command, args []string, n *node.Node) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			if workspace == "" && (attr != "" || host != "") {
				return usagef("--attr and --host need --workspace")
			}
			if keyPath == "" {
				keyPath = filepath.Join(n.Dir, node.AttestKeyFile)
			}
			signer, err := attest.LoadSigner(keyPath)
			if err != nil {
				return err
			}
			if commit != "" || len(applies) > 0 {
				if workspace != "" {
					return usagef("--commit and --apply (running-config/v1) cannot be combined with --workspace")
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "agentix-store: warning: --commit and --apply write a running-config/v1, which proves no configuration; use --workspace")
				return attestV1(cmd, n, id, signer, commit, applies, generation)
			}
			res, err := n.AttestRunning(cmd.Context(), id, signer, node.AttestOptions{Workspace: workspace, Attr: attr, Host: host, Generation: generation})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "agentix-store: warning: %s\n", w)
			}
			out := attestResult{publishResult: publishResult{ID: res.ID.String(), LogIndex: res.LogIndex, Existing: res.Existing}, Link: res.Link, Unproven: res.Unproven, Warnings: res.Warnings}
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
	c.Flags().StringVar(&keyPath, "key", "", "attestation private key PEM (default: <dir>/"+node.AttestKeyFile+")")
	return c
}

// attestResult is closure attest's output.
type attestResult struct {
	publishResult
	Link     *attest.ConfigurationLink `json:"link,omitempty"`
	Unproven string                    `json:"unproven,omitempty"`
	Warnings []string                  `json:"warnings,omitempty"`
}

// attestV1 publishes a running-config/v1 (deprecated).
func attestV1(cmd *cobra.Command, n *node.Node, id cid.Cid, signer *attest.Signer, commit string, applies []string, generation int64) error {
	env, err := closure.RunningConfig(cmd.Context(), n.Store, id, closure.RunningConfigOptions{
		ConfigCommit: strings.ToLower(commit), Applies: applies, Generation: generation, Time: time.Now(),
	}, signer)
	if err != nil {
		return err
	}
	p, err := n.Publisher().Publish(cmd.Context(), env)
	if err != nil {
		return err
	}
	res := publishResult{ID: p.ID.String(), LogIndex: p.LogIndex, Existing: p.Existing}
	return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintf(w, "%s\t%d\n", res.ID, res.LogIndex) })
}

// onClosureNode makes a command body that runs with the node opened for a
// closure command (see openForClosure) and closes it afterwards.
func onClosureNode(fn func(cmd *cobra.Command, args []string, n *node.Node) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		n, err := openForClosure()
		if err != nil {
			return err
		}
		defer n.Close()
		return fn(cmd, args, n)
	}
}
