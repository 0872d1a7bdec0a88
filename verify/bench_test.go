package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentix/agentix-store/attest"
)

// replayLog returns a directory of static tiles holding a log of n
// distinct signed proposal attestations, and its trust policy. It is built
// once (through a real node and its daemon) and kept in the system temp
// directory for later runs.
func replayLog(b *testing.B, n int) (string, *attest.Policy) {
	b.Helper()
	root := filepath.Join(os.TempDir(), fmt.Sprintf("agentix-verify-replay-%d-v1", n))
	tiles, polPath := filepath.Join(root, "tiles"), filepath.Join(root, "policy.json")
	if p, err := attest.LoadPolicy(polPath); err == nil {
		return tiles, p
	}
	os.RemoveAll(root)
	tn := openNode(b, initNodeDir(b, "bench"))
	c, err := tn.n.Store.Add(context.Background(), stringsReader("bench patch"), storeAddOptions())
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	const writers = 64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				env := proposalEnvelope(b, c, []byte(fmt.Sprintf("patch %d", i)), tn.signer)
				if _, err := tn.n.Log.Append(context.Background(), env); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	dir := mirror(b, tn.logURL())
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(dir, tiles); err != nil {
		b.Fatal(err)
	}
	pb, _ := tn.policy.Marshal()
	if err := os.WriteFile(polPath, pb, 0o644); err != nil {
		b.Fatal(err)
	}
	return tiles, tn.policy
}

// BenchmarkReplay100k is `agentix-verify log DIR --full` over a
// 100,000-entry log of signed attestations: fetch every entry bundle,
// verify every envelope on all cores, recompute the root.
func BenchmarkReplay100k(b *testing.B) {
	const n = 100_000
	dir, pol := replayLog(b, n)
	src, err := OpenLogSource(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total float64
	for b.Loop() {
		r, res := CheckLog(context.Background(), src, pol, dir, LogOptions{Full: true})
		if !r.OK || res.Replayed != n {
			b.Fatalf("replay: %+v %+v", r.Failures, r.Uncertain)
		}
		total += float64(res.Replayed)
	}
	b.ReportMetric(total/b.Elapsed().Seconds(), "entries/s")
}
