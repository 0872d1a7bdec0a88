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
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			if err := b.Pin(cmd.Context(), id, store.PinOptions{Name: name, Direct: direct}); err != nil {
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
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			if err := b.Unpin(cmd.Context(), id); err != nil {
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
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			out, err := b.Pins(cmd.Context())
			if err != nil {
				return err
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
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := b.GC(cmd.Context())
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
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
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
		},
	}
}
