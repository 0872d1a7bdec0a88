package main

import (
	"fmt"
	"io"
	"time"

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
	var name string
	var direct bool
	add := &cobra.Command{
		Use:   "add [--name NAME] [--direct] CID",
		Short: "Pin a DAG (recursive: every block must be present) or one block (--direct)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			n, err := a.open(false)
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.Store.Pin(cmd.Context(), id, store.PinOptions{Name: name, Direct: direct}); err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), pinJSON{CID: id.String(), Name: name, Type: pinType(direct), Created: time.Now().UTC()}, func(w io.Writer) {
				fmt.Fprintf(w, "pinned %s (%s)\n", id, pinType(direct))
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "a name for the pin")
	add.Flags().BoolVar(&direct, "direct", false, "pin only this block, not its DAG")
	rm := &cobra.Command{
		Use:   "rm CID",
		Short: "Remove a pin (the blocks stay until gc)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := store.ParseCID(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			n, err := a.open(false)
			if err != nil {
				return err
			}
			defer n.Close()
			if err := n.Store.Unpin(cmd.Context(), id); err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), map[string]string{"unpinned": id.String()}, func(w io.Writer) {
				fmt.Fprintf(w, "unpinned %s\n", id)
			})
		},
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List pins",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(false)
			if err != nil {
				return err
			}
			defer n.Close()
			pins, err := n.Store.Pins(cmd.Context())
			if err != nil {
				return err
			}
			out := []pinJSON{}
			for _, p := range pins {
				out = append(out, pinJSON{CID: p.Cid.String(), Name: p.Name, Type: pinType(p.Direct), Created: p.Created})
			}
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				for _, p := range out {
					fmt.Fprintf(w, "%s  %-9s  %s\n", p.CID, p.Type, p.Name)
				}
			})
		},
	}
	c.AddCommand(add, rm, ls)
	return c
}

func newGCCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Delete every block no pin or registered root reaches",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(false)
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.Store.GC(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "removed %d blocks (%d bytes), kept %d\n", res.Removed, res.FreedBytes, res.Kept)
			})
		},
	}
}

func newStatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stat",
		Short: "Print the store's block count, bytes and pins",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.open(false)
			if err != nil {
				return err
			}
			defer n.Close()
			st, err := n.Store.Stat(cmd.Context())
			if err != nil {
				return err
			}
			out := struct {
				Dir string `json:"dir"`
				store.Stats
			}{n.Dir, st}
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "dir     %s\nblocks  %d\nbytes   %d\npins    %d\n", n.Dir, st.Blocks, st.Bytes, st.Pins)
			})
		},
	}
}
