package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// genLines writes n lines cycling through the real sample's line shapes,
// each with its own timestamp, to w (a workspace's audit log).
func genLines(tb testing.TB, ws string, from, n int) {
	tb.Helper()
	shapes := sampleLines(tb)
	f, err := os.OpenFile(filepath.Join(ws, ".agentix", "audit.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		l := shapes[i%len(shapes)]
		j := strings.Index(l, `"timestamp": "`) + len(`"timestamp": "`)
		ts := base.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000+00:00")
		w.WriteString(l[:j])
		w.WriteString(ts)
		w.WriteString(l[j+len(ts):])
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}

const benchLines = 1_000_000

// BenchmarkIngest measures a first ingest of a 1,000,000-line audit log
// generated from the real line shapes (store bytes, parse, hash, evaluate,
// store patches, write state; no attestations).
func BenchmarkIngest(b *testing.B) {
	ws := newWorkspace(b, []string{})
	genLines(b, ws, 0, benchLines)
	fi, _ := os.Stat(filepath.Join(ws, ".agentix", "audit.jsonl"))
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n := newNode(b, false)
		b.StartTimer()
		r, err := n.ing.Ingest(context.Background(), ws, IngestOptions{Workspace: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if r.Lines != benchLines || !r.Boundary.Passed {
			b.Fatalf("ingested %d lines, passed %v", r.Lines, r.Boundary.Passed)
		}
	}
	b.ReportMetric(float64(benchLines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkIngestIncremental measures ingesting 1,000 new lines on top of
// an already ingested 1,000,000-line log: the cost should be that of the
// new lines only.
func BenchmarkIngestIncremental(b *testing.B) {
	for _, base := range []int{10_000, benchLines} {
		b.Run(fmt.Sprintf("base=%d", base), func(b *testing.B) {
			const add = 1000
			ws := newWorkspace(b, []string{})
			genLines(b, ws, 0, base)
			n := newNode(b, false)
			ctx := context.Background()
			if _, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "bench"}); err != nil {
				b.Fatal(err)
			}
			next := base
			b.ResetTimer()
			var bytes int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				genLines(b, ws, next, add)
				next += add
				b.StartTimer()
				r, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if r.NewLines != add {
					b.Fatalf("ingested %d new lines", r.NewLines)
				}
				bytes = r.Size
			}
			_ = bytes
			b.ReportMetric(float64(add)*float64(b.N)/b.Elapsed().Seconds(), "newlines/s")
		})
	}
}
