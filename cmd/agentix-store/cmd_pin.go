package main

import (
	"fmt"
	"github.com/agentix/agentix-store/internal/api"
	"io"
	"strings"
	"time"

	"github.com/agentix/agentix-store/internal/kubo"
	"github.com/agentix/agentix-store/internal/progress"
	"github.com/agentix/agentix-store/store"
	"github.com/spf13/cobra"
)

func init() { register(newPinCmd); register(newGCCmd); register(newStatCmd) }

type pinJSON struct {
	CID     string    `json:"cid"`
	Name    string    `json:"name,omitempty"`
	Type    string    `json:"type"`
	Created time.Time `json:"created"`
}

func pinType(direct bool) string {
	if direct {
		return "direct"
	}
	return "recursive"
}

func newPinCmd() *cobra.Command {
	c := &cobra.Command{Use: "pin", Short: "Keep DAGs from garbage collection"}
	var name, from string
	var direct bool
	add := &cobra.Command{
		Use:   "add [--name NAME] [--direct] [--from PEER_URL] CID|STORE_PATH",
		Short: "Pin a DAG (recursive: every block must be present) or one block (--direct); --from pulls it from a peer first",
		Long: `pin add pins a DAG that is in the store. With --from, it first pulls the DAG
from a peer node's trustless gateway (PEER_URL/ipfs/<cid>?format=car),
verifying every block against its CID as it arrives; an interrupted pull
keeps what verified, and running the same command again fetches only what is
missing. A STORE_PATH (with --from) names a Nix closure the peer holds: it is
pulled, every NAR hash and the closure's completeness are checked, and the
closure is indexed so this node's /nix/ binary cache serves it.`,
		Args: exactArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			if from != "" {
				if direct {
					return usagef("pin add: --direct and --from don't go together")
				}
				bar := progress.New(-1, "pull", a.json)
				res, err := b.PinFrom(cmd.Context(), from, args[0], name, func(_ int, n int64) { bar.Set(n) })
				bar.Done()
				if err != nil {
					return err
				}
				return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "pinned %s from %s (%d blocks fetched, %d bytes; %d already here)\n", res.Root, from, res.Fetched, res.FetchedBytes, res.Present)
					if res.Closure != nil {
						fmt.Fprintf(w, "closure of %s: %d paths, %d NAR bytes, verified and served under /nix/\n", res.Closure.Root, res.Closure.Paths, res.Closure.NarBytes)
					}
				})
			}
			if strings.HasPrefix(args[0], "/nix/") {
				return usagef("pin add: a store path needs --from PEER_URL (use 'closure import' for the local Nix)")
			}
			id, err := cidArg(args[0])
			if err != nil {
				return err
			}
			if err := b.Pin(cmd.Context(), id, store.PinOptions{Name: name, Direct: direct}); err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), pinJSON{CID: id.String(), Name: name, Type: pinType(direct), Created: time.Now().UTC()}, func(w io.Writer) {
				fmt.Fprintf(w, "pinned %s (%s)\n", id, pinType(direct))
			})
		}),
	}
	add.Flags().StringVar(&name, "name", "", "a name for the pin")
	add.Flags().BoolVar(&direct, "direct", false, "pin only this block, not its DAG")
	add.Flags().StringVar(&from, "from", "", "pull the DAG from this peer node (http://host:port) first")
	var kuboURL string
	push := &cobra.Command{
		Use:   "push --kubo RPC_URL CID",
		Short: "Import a DAG into a Kubo node (RPC /api/v0/dag/import) and pin it there",
		Args:  exactArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			if kuboURL == "" {
				return usagef("pin push: --kubo RPC_URL is required (e.g. http://127.0.0.1:5001)")
			}
			id, err := cidArg(args[0])
			if err != nil {
				return err
			}
			kc, err := kubo.New(kuboURL, nil)
			if err != nil {
				return usagef("%v", err)
			}
			bar := progress.New(-1, "push", a.json)
			pr, pw := io.Pipe()
			go func() {
				pw.CloseWithError(b.ExportCAR(cmd.Context(), pw, id, store.ExportOptions{Progress: bar.Set}))
			}()
			roots, err := kc.ImportCAR(cmd.Context(), pr)
			pr.CloseWithError(err)
			bar.Done()
			if err != nil {
				return err
			}
			ok, err := kc.Pinned(cmd.Context(), id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("kubo at %s imported %v but does not list a recursive pin on %s", kuboURL, roots, id)
			}
			res := map[string]any{"cid": id.String(), "kubo": kuboURL, "pinned": true}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintf(w, "pinned %s on %s\n", id, kuboURL) })
		}),
	}
	push.Flags().StringVar(&kuboURL, "kubo", "", "Kubo RPC URL, e.g. http://127.0.0.1:5001")
	rm := &cobra.Command{
		Use:   "rm CID",
		Short: "Remove a pin (the blocks stay until gc)",
		Args:  cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := cidArg(args[0])
			if err != nil {
				return err
			}
			if err := b.Unpin(cmd.Context(), id); err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), map[string]string{"unpinned": id.String()}, func(w io.Writer) {
				fmt.Fprintf(w, "unpinned %s\n", id)
			})
		}),
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List pins",
		Args:  exactArgs(0),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			out, err := b.Pins(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				for _, p := range out {
					fmt.Fprintf(w, "%s  %-9s  %s\n", p.CID, p.Type, p.Name)
				}
			})
		}),
	}
	c.AddCommand(add, rm, ls, push)
	return c
}

func newGCCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Delete every block no pin or registered root reaches",
		Args:  exactArgs(0),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			res, err := b.GC(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "removed %d blocks (%d bytes), kept %d\n", res.Removed, res.FreedBytes, res.Kept)
			})
		}),
	}
}

func newStatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stat",
		Short: "Print the store's block count, bytes and pins",
		Args:  exactArgs(0),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			st, err := b.Stat(cmd.Context())
			if err != nil {
				return err
			}
			dir, _ := a.dir()
			out := struct {
				Dir string `json:"dir"`
				store.Stats
			}{dir, st}
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "dir     %s\nblocks  %d\nbytes   %d\npins    %d\n", dir, st.Blocks, st.Bytes, st.Pins)
			})
		}),
	}
}
