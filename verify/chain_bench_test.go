package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentix/agentix-store/internal/nixostest"
)

// generation plays one generation of the ladder: a controller run saves a
// patch that adds module gen-k.nix and imports it, the human applies it,
// the node ingests, rebuilds and attests.
func (l *ladder) generation(k int) {
	l.t.Helper()
	base := filepath.Join(l.ws, "modules", "agentic-base.nix")
	old, err := os.ReadFile(base)
	if err != nil {
		l.t.Fatal(err)
	}
	mod := fmt.Sprintf("modules/gen-%03d.nix", k)
	if err := os.WriteFile(filepath.Join(l.ws, mod), []byte(fmt.Sprintf("{ config, pkgs, ... }:\n\n{\n  # generation %d\n}\n", k)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	updated := strings.Replace(string(old), "  ];", fmt.Sprintf("    ./gen-%03d.nix\n  ];", k), 1)
	if err := os.WriteFile(base, []byte(updated), 0o644); err != nil {
		l.t.Fatal(err)
	}
	nixostest.Git(l.t, l.ws, "add", "-N", mod)
	patch := nixostest.Git(l.t, l.ws, "diff", "--", "modules")
	nixostest.Git(l.t, l.ws, "checkout", "--", "modules/agentic-base.nix")
	os.Remove(filepath.Join(l.ws, mod))
	nixostest.Git(l.t, l.ws, "rm", "-q", "--cached", mod)
	name := fmt.Sprintf("gen-%03d.patch", k)
	if err := os.WriteFile(filepath.Join(l.ws, proposalsRel, name), []byte(patch), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.lines = append(l.lines, `{"action": "controller_run", "error": null, "execute": true, "goal": "g", "mode": "execute", "passed": true, "path": "/home/operator/nixos-config", "proposal_saved": "/home/operator/nixos-config/`+proposalsRel+name+`", "result": "ok", "source_modified": false, "timestamp": "2026-11-25T16:58:35.430106+00:00"}`)
	l.apply(name)
	l.ingest()
	l.attest(l.rebuild())
}

// BenchmarkChainAudit measures the auditor on a 100-generation chain (100
// applies, 100 running-config/v2 links, each evaluated with real Nix):
// "full" replays it all from the genesis with a fresh auditor state;
// "one-more" adds one generation and re-audits with the state that proved
// the chain so far, which replays (and evaluates) only the new link.
func BenchmarkChainAudit(b *testing.B) {
	const gens = 100
	l := newLadder(b)
	if _, err := l.tn.n.RecordGenesis(context.Background(), l.ws); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for k := 1; k <= gens; k++ {
		l.generation(k)
	}
	b.Logf("node side: %d generations (ingest, nix build, closure import, attest with evaluation) in %v", gens, time.Since(start))

	states := b.TempDir()
	b.Run(fmt.Sprintf("full-%d", gens), func(b *testing.B) {
		var replayed int
		for b.Loop() {
			dir, err := os.MkdirTemp(states, "state-")
			if err != nil {
				b.Fatal(err)
			}
			st, err := OpenState(dir)
			if err != nil {
				b.Fatal(err)
			}
			l.state = st
			r := l.audit()
			if !r.OK {
				b.Fatalf("not proven: %+v %+v", r.Failures, r.Uncertain)
			}
			replayed = r.Details["configLinksReplayed"].(int)
		}
		b.ReportMetric(float64(replayed), "links-replayed")
	})
	b.Run("one-more", func(b *testing.B) {
		k := gens
		var replayed int
		for b.Loop() {
			b.StopTimer()
			k++
			l.generation(k)
			b.StartTimer()
			r := l.audit()
			if !r.OK {
				b.Fatalf("not proven: %+v %+v", r.Failures, r.Uncertain)
			}
			replayed = r.Details["configLinksReplayed"].(int)
		}
		b.ReportMetric(float64(replayed), "links-replayed")
	})
}
