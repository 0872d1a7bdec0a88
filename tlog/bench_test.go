package tlog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// reportLatencies reports entries/s, p50_ms and p99_ms.
func reportLatencies(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "entries/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// BenchmarkAppend measures durable append throughput and latency with 512-byte
// entries at 1, 16 and 256 concurrent writers (b.N appends in total).
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l, _, _ := newTestLog(b, Options{})
			ctx := context.Background()
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(512)
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := make([]byte, 512)
					rand.Read(e)
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						binary.BigEndian.PutUint64(e, uint64(i))
						binary.BigEndian.PutUint32(e[8:], uint32(w))
						t0 := time.Now()
						if _, err := l.Append(ctx, e); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			reportLatencies(b, lat, elapsed)
		})
	}
}

const bigTree = 1_000_000

// bigLog opens (building once, then caching in the temp directory) a log of
// one million 64-byte entries. Set AGENTIX_LOG_BENCH_DIR to choose the cache.
func bigLog(b *testing.B) *Log {
	b.Helper()
	dir := os.Getenv("AGENTIX_LOG_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "agentix-log-bench-1m-runs")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	keyFile := filepath.Join(dir, "log.key")
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		sk, _, err := note.GenerateKey(rand.Reader, "example.com/bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(keyFile, []byte(sk), 0o600); err != nil {
			b.Fatal(err)
		}
		skey = []byte(sk)
	}
	s, err := note.NewSigner(string(skey))
	if err != nil {
		b.Fatal(err)
	}
	db := openDB(b, dir)
	l, err := Open(db, Options{Signer: s})
	if err != nil {
		db.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(); db.Close() })
	if l.Size() < bigTree {
		b.Logf("building a %d-entry tree in %s (cached for later runs)", bigTree, dir)
		t0 := time.Now()
		// Feed the sequencer directly with full batches: same commit path
		// as Append, without a million goroutine round trips.
		for l.Size() < bigTree {
			n := min(DefaultMaxBatch, bigTree-int(l.Size()))
			batch := make([]*appendReq, n)
			for i := range batch {
				e := make([]byte, 64)
				binary.BigEndian.PutUint64(e, l.Size()+uint64(i))
				batch[i] = newAppendReq(e)
			}
			// The sequencer goroutine is idle (no Append calls), so commit
			// may run here.
			if _, err := l.commit(batch); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("built in %v", time.Since(t0))
	}
	// Lookups by leaf hash are measured with the index caught up, as it is
	// within indexEvery of any quiet moment.
	if err := l.indexUpTo(l.Size()); err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkInclusionProof(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	size := l.Size()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		idx := (uint64(i) * 7919) % size
		if _, err := l.InclusionProof(ctx, idx, size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInclusionProofByLeafHash(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	size := l.Size()
	for i := 0; b.Loop(); i++ {
		e, err := l.Entry(ctx, (uint64(i)*7919)%size)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := l.InclusionProofByLeafHash(ctx, LeafHash(e), size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	size := l.Size()
	for i := 0; b.Loop(); i++ {
		old := 1 + (uint64(i)*104729)%(size-1)
		if _, err := l.ConsistencyProof(ctx, old, size); err != nil {
			b.Fatal(err)
		}
	}
}
