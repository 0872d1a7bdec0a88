package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/tlog"
	"github.com/spf13/cobra"
)

func init() { register(newLogCmd) }

func parseUintArg(name, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usagef("%s %q is not a non-negative decimal integer", name, s)
	}
	return v, nil
}

type logAppendResult struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"`
}

// logEntry is one entry as log entries prints it.
type logEntry = api.LogEntry

func printable(b []byte) string {
	if !utf8.Valid(b) {
		return "base64:" + base64.StdEncoding.EncodeToString(b)
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' {
			return "base64:" + base64.StdEncoding.EncodeToString(b)
		}
	}
	return strconv.Quote(string(b))
}

func printProof(w io.Writer, p [][]byte) {
	for _, h := range p {
		fmt.Fprintln(w, base64.StdEncoding.EncodeToString(h))
	}
}

func newLogCmd() *cobra.Command {
	c := &cobra.Command{Use: "log", Short: "The node's transparency log: append, checkpoint, entries, proofs"}

	c.AddCommand(&cobra.Command{
		Use:   "append FILE|-",
		Short: "Append one entry (a file's bytes) and print its index once durable",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := openInput(args[0])
			if err != nil {
				return err
			}
			data, err := io.ReadAll(io.LimitReader(r, tlog.MaxEntrySize+1))
			r.Close()
			if err != nil {
				return err
			}
			if len(data) > tlog.MaxEntrySize {
				return fmt.Errorf("%s: %w: limit %d bytes", args[0], tlog.ErrEntryTooLarge, tlog.MaxEntrySize)
			}
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			idx, err := b.LogAppend(cmd.Context(), data)
			if err != nil {
				return err
			}
			res := logAppendResult{Index: idx, LeafHash: hex.EncodeToString(tlog.LeafHash(data))}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintln(w, idx) })
		},
	})

	c.AddCommand(&cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (C2SP signed note)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			cp, err := b.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), cp, func(w io.Writer) { io.WriteString(w, cp.Note) })
		},
	})

	var from, to string
	entries := &cobra.Command{
		Use:   "entries [--from N] [--to M]",
		Short: "Print entries with index in [N, M) (default: all)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, t := uint64(0), int64(-1)
			var err error
			if from != "" {
				if f, err = parseUintArg("--from", from); err != nil {
					return err
				}
			}
			if to != "" {
				u, err := parseUintArg("--to", to)
				if err != nil {
					return err
				}
				t = int64(u)
			}
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			out, err := b.LogEntries(cmd.Context(), f, t)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				for _, e := range out {
					fmt.Fprintf(w, "%d\t%s\n", e.Index, printable(e.Entry))
				}
			})
		},
	}
	entries.Flags().StringVar(&from, "from", "", "first index (default 0)")
	entries.Flags().StringVar(&to, "to", "", "end index, exclusive (default: the log's size)")
	c.AddCommand(entries)

	pc := &cobra.Command{Use: "proof", Short: "Inclusion and consistency proofs (RFC 6962)"}
	var leafHash, sizeFlag string
	incl := &cobra.Command{
		Use:   "inclusion (INDEX | --leaf-hash HEX) [--size N]",
		Short: "Print the inclusion proof of an entry in the tree of size N (default: latest)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if (leafHash == "") == (len(args) != 1) || len(args) > 1 {
				return usagef("%s: give either INDEX or --leaf-hash HEX", cmd.CommandPath())
			}
			var size uint64
			var err error
			if sizeFlag != "" {
				if size, err = parseUintArg("--size", sizeFlag); err != nil {
					return err
				}
				if size == 0 {
					return usagef("--size 0: an empty tree has no inclusion proofs")
				}
			}
			req := api.InclusionRequest{Size: size}
			if leafHash != "" {
				h, err := hex.DecodeString(leafHash)
				if err != nil || len(h) != 32 {
					return usagef("--leaf-hash %q is not 64 hex digits", leafHash)
				}
				req.LeafHash = h
			} else if req.Index, err = parseUintArg("INDEX", args[0]); err != nil {
				return err
			}
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := b.Inclusion(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "index %d\nsize %d\nleaf_hash %s\nroot %s\n", res.Index, res.Size, res.LeafHash, base64.StdEncoding.EncodeToString(res.Root))
				printProof(w, res.Proof)
			})
		},
	}
	incl.Flags().StringVar(&leafHash, "leaf-hash", "", "RFC 6962 leaf hash of the entry, hex")
	incl.Flags().StringVar(&sizeFlag, "size", "", "tree size (default: latest checkpoint)")
	pc.AddCommand(incl)
	pc.AddCommand(&cobra.Command{
		Use:   "consistency OLD NEW",
		Short: "Print the consistency proof between tree sizes OLD and NEW",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, err := parseUintArg("OLD", args[0])
			if err != nil {
				return err
			}
			nw, err := parseUintArg("NEW", args[1])
			if err != nil {
				return err
			}
			if old > nw {
				return usagef("OLD %d > NEW %d", old, nw)
			}
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := b.Consistency(cmd.Context(), old, nw)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "old %d %s\nnew %d %s\n", res.Old, base64.StdEncoding.EncodeToString(res.OldRoot), res.New, base64.StdEncoding.EncodeToString(res.NewRoot))
				printProof(w, res.Proof)
			})
		},
	})
	c.AddCommand(pc)
	return c
}
