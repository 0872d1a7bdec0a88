package store

import (
	"testing"
)

// BenchmarkPackAppend appends 1 GiB of 256 KiB blocks to a pack, 8 blocks
// per call (as Add's 2 MiB batches), from aligned and from unaligned memory.
func BenchmarkPackAppend(b *testing.B) {
	for _, tc := range []struct {
		name     string
		noDirect bool
		offset   int
	}{{"direct-aligned", false, 0}, {"direct-copy", false, 1}, {"buffered", true, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			const blk, per, total = 256 << 10, 8, 1 << 30
			bufs := make([][]byte, per)
			for i := range bufs {
				bufs[i] = alignedBuf(blk + packAlign)[tc.offset : tc.offset+blk]
				for j := range bufs[i] {
					bufs[i][j] = byte(i + j)
				}
			}
			b.SetBytes(total)
			for i := 0; i < b.N; i++ {
				p := newPacks(b.TempDir(), false, tc.noDirect)
				for n := 0; n < total; n += blk * per {
					if _, err := p.appendBlocks(bufs, false); err != nil {
						b.Fatal(err)
					}
				}
				if err := p.close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
