package main

import (
	"fmt"
	"github.com/agentix/agentix-store/internal/api"
	"io"

	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mc "github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
	"github.com/spf13/cobra"
)

func init() { register(newBlockCmd) }

type blockStat struct {
	CID  string `json:"cid"`
	Size int    `json:"size"`
}

func newBlockCmd() *cobra.Command {
	c := &cobra.Command{Use: "block", Short: "Raw blocks: put, get, stat, rm"}
	var codec string
	put := &cobra.Command{
		Use:   "put [--codec raw|dag-cbor|dag-pb|dag-json] FILE|-",
		Short: "Store one block (CIDv1, sha2-256) and print its CID",
		Args:  exactArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			var code mc.Code
			if err := code.Set(codec); err != nil {
				return usagef("--codec %q: unknown codec", codec)
			}
			r, _, err := openInput(args[0])
			if err != nil {
				return err
			}
			data, err := io.ReadAll(io.LimitReader(r, store.MaxBlockSize+1))
			r.Close()
			if err != nil {
				return err
			}
			if len(data) > store.MaxBlockSize {
				return fmt.Errorf("%s: block larger than %d bytes; use add for files", args[0], store.MaxBlockSize)
			}
			id, err := cid.V1Builder{Codec: uint64(code), MhType: mh.SHA2_256}.Sum(data)
			if err != nil {
				return err
			}
			blk, err := blocks.NewBlockWithCid(data, id)
			if err != nil {
				return err
			}
			if err := b.PutBlock(cmd.Context(), blk); err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), blockStat{CID: id.String(), Size: len(data)}, func(w io.Writer) { fmt.Fprintln(w, id) })
		}),
	}
	put.Flags().StringVar(&codec, "codec", "raw", "multicodec of the block")
	get := &cobra.Command{
		Use:   "get CID",
		Short: "Write a block's bytes to stdout (hash-checked)",
		Args:  cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := cidArg(args[0])
			if err != nil {
				return err
			}
			data, err := b.GetBlock(cmd.Context(), id)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		}),
	}
	stat := &cobra.Command{
		Use:   "stat CID",
		Short: "Print a block's CID and size",
		Args:  cidArgs(1),
		RunE: onBackend(func(cmd *cobra.Command, args []string, b api.Backend) error {
			id, err := cidArg(args[0])
			if err != nil {
				return err
			}
			size, err := b.BlockSize(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.emit(cmd.OutOrStdout(), blockStat{CID: id.String(), Size: size}, func(w io.Writer) {
				fmt.Fprintf(w, "%s  %d bytes\n", id, size)
			})
		}),
	}
	c.AddCommand(put, get, stat)
	return c
}
