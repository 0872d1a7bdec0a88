package main

import (
	"bufio"
	"fmt"
	"github.com/agentix/agentix-store/internal/api"
	"io"
	"os"

	"github.com/agentix/agentix-store/internal/progress"
	"github.com/agentix/agentix-store/store"
	"github.com/spf13/cobra"
)

func init() { register(newCarCmd) }

func newCarCmd() *cobra.Command {
	c := &cobra.Command{Use: "car", Short: "Move DAGs as CAR files"}
	var version int
	var out string
	export := &cobra.Command{
		Use:   "export [--version 1|2] [-o FILE] CID",
		Short: "Write the DAG under CID as a CAR (stdout unless -o)",
		Args:  exactArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			if version != 1 && version != 2 {
				return usagef("--version must be 1 or 2, got %d", version)
			}
			id, err := cidArg(args[0])
			if err != nil {
				return err
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
			bar := progress.New(-1, "export", a.json)
			err = b.ExportCAR(cmd.Context(), bw, id, store.ExportOptions{Version: version, Progress: bar.Set})
			bar.Done()
			if err != nil {
				return err
			}
			return bw.Flush()
		}),
	}
	export.Flags().IntVar(&version, "version", 1, "CAR version: 1 or 2")
	export.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	export.SetOut(os.Stdout)

	var pin bool
	imp := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Import a CARv1/v2: every block verified before anything is stored (all or nothing)",
		Args:  exactArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			r, size, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer r.Close()
			bar := progress.New(size, "import", a.json)
			res, err := b.ImportCAR(cmd.Context(), bar.Reader(r), store.ImportOptions{Pin: pin})
			bar.Done()
			if err != nil {
				return fmt.Errorf("import %s: %w", args[0], err)
			}
			out := res
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				for _, r := range out.Roots {
					fmt.Fprintf(w, "root %s\n", r)
				}
				fmt.Fprintf(w, "imported %d blocks, %d bytes\n", out.Blocks, out.Bytes)
			})
		}),
	}
	imp.Flags().BoolVar(&pin, "pin", true, "pin the CAR's roots recursively")
	c.AddCommand(export, imp)
	return c
}
