package store_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/ipfs/go-cid"
)

// stBenchDAG stores a 64 MiB UnixFS file (256 KiB raw leaves, 174 links per
// node, as Kubo) under a dag-cbor root and returns the root.
func stBenchDAG(b *testing.B) (*stEnv, cid.Cid) {
	b.Helper()
	e := stOpen(b, store.Options{})
	file, _ := e.stFile(stRand(64, 64<<20), 256<<10, 174)
	root := stCBOR(b, "bench", file)
	e.put(root)
	return e, root.Cid()
}

func BenchmarkExportCAR(b *testing.B) {
	e, root := stBenchDAG(b)
	ctx := context.Background()
	for _, v := range []int{1, 2} {
		b.Run("v"+string(rune('0'+v)), func(b *testing.B) {
			size := int64(len(e.export(root, v)))
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := e.s.ExportCAR(ctx, io.Discard, root, store.ExportOptions{Version: v, TempDir: b.TempDir()}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkImportCAR(b *testing.B) {
	e, root := stBenchDAG(b)
	data := e.export(root, 1)
	path := filepath.Join(b.TempDir(), "bench.car")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, in := range []string{"reader", "file"} {
		b.Run(in, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				db, err := kv.Open(b.TempDir(), kv.Options{})
				if err != nil {
					b.Fatal(err)
				}
				s := store.New(db, store.Options{})
				var r io.Reader = bytes.NewReader(data)
				if in == "file" {
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
					r = f
				}
				b.StartTimer()
				res, err := s.ImportCAR(ctx, r, store.ImportOptions{TempDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if res.Blocks < 256 {
					b.Fatalf("imported %d blocks", res.Blocks)
				}
				db.Close()
				b.StartTimer()
			}
		})
	}
}
