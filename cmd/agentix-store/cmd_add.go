package main

import (
	"fmt"
	"github.com/agentix/agentix-store/internal/api"
	"io"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/internal/progress"
	"github.com/agentix/agentix-store/store"
	"github.com/spf13/cobra"
)

func init() { register(newAddCmd); register(newCatCmd) }

type addResult struct {
	File string `json:"file"`
	CID  string `json:"cid"`
	Size int64  `json:"size"`
}

func newAddCmd() *cobra.Command {
	var chunker string
	var pin bool
	c := &cobra.Command{
		Use:   "add [--chunker size-N|buzhash] FILE|-...",
		Short: "Store files as UnixFS (CIDv1, raw leaves, Kubo-identical CIDs); print one CID per file",
		Args:  minArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			var results []addResult
			for _, name := range args {
				r, size, err := openInput(name)
				if err != nil {
					return err
				}
				bar := progress.New(size, filepath.Base(name), a.json)
				res, err := b.Add(cmd.Context(), r, store.AddOptions{
					Chunker:  chunker,
					Pin:      pin,
					Progress: bar.Set,
				})
				bar.Done()
				r.Close()
				if err != nil {
					return fmt.Errorf("add %s: %w", name, err)
				}
				results = append(results, addResult{File: name, CID: res.CID, Size: res.Size})
				if !a.json {
					fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", res.CID, name)
				}
			}
			if a.json {
				return a.emit(cmd.OutOrStdout(), results, nil)
			}
			return nil
		}),
	}
	c.Flags().StringVar(&chunker, "chunker", "", "chunker: size-N or buzhash (default from config: size-262144)")
	c.Flags().BoolVar(&pin, "pin", true, "pin each file recursively so GC keeps it")
	return c
}

func newCatCmd() *cobra.Command {
	var offset, length int64
	c := &cobra.Command{
		Use:   "cat CID",
		Short: "Write a UnixFS file's bytes to stdout (every block hash-checked)",
		Args:  cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := cidArg(args[0])
			if err != nil {
				return err
			}
			rc, err := b.CatRange(cmd.Context(), id, offset, length)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			return err
		}),
	}
	c.Flags().Int64Var(&offset, "offset", 0, "first byte to write")
	c.Flags().Int64Var(&length, "length", -1, "number of bytes to write (-1: to the end)")
	c.SetOut(os.Stdout)
	return c
}
