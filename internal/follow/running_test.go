package follow_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/internal/follow"
	"github.com/agentix/agentix-store/internal/nixostest"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/verify"
)

const (
	host         = "alpha"
	proposalsRel = ".agentix/proposals/"
)

// switchTo points the running-system symlink link at target the way a
// NixOS switch does: a new link renamed over the old one.
func switchTo(t *testing.T, link, target string) {
	t.Helper()
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// TestRunningSystemUnproven: a running system whose configuration cannot
// be computed is still attested, the running-config saying why; a
// restarted daemon does not attest the same system again.
func TestRunningSystemUnproven(t *testing.T) {
	nixostest.Need(t)
	cases := []struct {
		name   string
		ws     func(t *testing.T) []node.WorkspaceConfig
		reason string
	}{
		{"no workspace", func(t *testing.T) []node.WorkspaceConfig { return nil }, "no workspace is configured for this system"},
		{"workspace that is not a git-repo flake", func(t *testing.T) []node.WorkspaceConfig {
			return []node.WorkspaceConfig{{Path: agentixtest.Workspace(t, []string{})}}
		}, "is not a git-repo flake (no flake.nix)"},
		{"workspace for another host", func(t *testing.T) []node.WorkspaceConfig {
			return []node.WorkspaceConfig{{Path: nixostest.NewWorkspace(t, "beta"), Host: "beta"}, {Path: nixostest.NewWorkspace(t, "gamma"), Host: "gamma"}}
		}, "none of the 2 configured workspaces is for host alpha"},
		{"workspace that does not evaluate to the running system", func(t *testing.T) []node.WorkspaceConfig {
			ws := nixostest.NewWorkspace(t, host)
			nixostest.ApplyIndex(t, ws, nixostest.PatchPath(t, nixostest.PatchFoo))
			return []node.WorkspaceConfig{{Path: ws}}
		}, "does not evaluate to the running system"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The running system: the toy base system of host alpha.
			sys := nixostest.Build(t, nixostest.NewWorkspace(t, host), chain.DefaultAttr(host))
			link := filepath.Join(t.TempDir(), "current-system")
			switchTo(t, link, sys)
			dir := initNode(t, host)
			for _, w := range c.ws(t) {
				addWorkspace(t, dir, w)
			}
			d := serve(t, dir, follow.Options{RunningSystem: link})
			took := waitFor(t, 60*time.Second, "the running system attested", func() bool {
				return d.detail().Follow.RunningSystem.Attested == sys
			})
			t.Logf("imported and attested %v after start", took)
			rs := d.detail().Follow.RunningSystem
			if !strings.Contains(rs.Unproven, c.reason) || rs.Error != "" {
				t.Fatalf("running system status %+v: want unproven %q", rs, c.reason)
			}
			rcs := d.runningConfigs()
			if len(rcs) != 1 || rcs[0].Closure.RootStorePath != sys || !strings.Contains(rcs[0].Unproven, c.reason) || rcs[0].Configuration != nil {
				t.Fatalf("running-configs %+v: want one of %s, unproven %q", rcs, sys, c.reason)
			}
			if v := d.metric("agentix_follow_successes_total", `step="attest"`); v != 1 {
				t.Fatalf("agentix_follow_successes_total{step=\"attest\"} = %v", v)
			}
			d.stop()

			// Restarted on the same system: nothing new is attested.
			d = serve(t, dir, follow.Options{RunningSystem: link})
			waitFor(t, 10*time.Second, "the restarted follower looked at the running system", func() bool {
				return !d.detail().Follow.RunningSystem.LastCheck.IsZero()
			})
			if rcs := d.runningConfigs(); len(rcs) != 1 {
				t.Fatalf("a restart attested the same system again: %d running-configs", len(rcs))
			}
			for _, step := range []string{"import", "attest"} {
				if v := d.metric("agentix_follow_successes_total", `step="`+step+`"`); v != 0 {
					t.Fatalf("the restarted daemon ran step %s again (%v times) for the system it had attested", step, v)
				}
			}
			if rs := d.detail().Follow.RunningSystem; rs.Attested != sys || !rs.LastAttest.IsZero() {
				t.Fatalf("restarted: running system status %+v: want attested %s learnt from the log", rs, sys)
			}
		})
	}
}

// TestFollowE2E is issue 15's end-to-end run with ONE daemon that is never
// stopped: a script plays Agentix in a workspace (appends lines, saves a
// proposal, applies it), builds the new toy system and retargets the
// running-system symlink; the node ingests, imports and attests by itself,
// and the auditor proves the configuration chain.
func TestFollowE2E(t *testing.T) {
	nixostest.Need(t)
	ctx := context.Background()
	ws := nixostest.NewWorkspace(t, host)
	if err := os.MkdirAll(filepath.Join(ws, proposalsRel), 0o755); err != nil {
		t.Fatal(err)
	}
	genesis := nixostest.Build(t, ws, chain.DefaultAttr(host))
	link := filepath.Join(t.TempDir(), "current-system")
	switchTo(t, link, genesis)
	profiles := t.TempDir()
	if err := os.Symlink(genesis, filepath.Join(profiles, "system-1-link")); err != nil {
		t.Fatal(err)
	}
	dir := initNode(t, host)
	addWorkspace(t, dir, node.WorkspaceConfig{Path: ws})
	d := serve(t, dir, follow.Options{RunningSystem: link, ProfilesDir: profiles})

	// The system it runs at start is attested with its genesis link.
	waitFor(t, 60*time.Second, "the genesis system attested", func() bool {
		return d.detail().Follow.RunningSystem.Attested == genesis
	})
	if rs := d.detail().Follow.RunningSystem; rs.Unproven != "" || rs.Workspace != ws {
		t.Fatalf("genesis system attested unproven: %+v", rs)
	}

	// Agentix: a controller run saves the foo proposal, the operator
	// applies it (git apply --index) and Agentix logs the apply.
	name := nixostest.PatchFoo
	if err := os.WriteFile(filepath.Join(ws, proposalsRel, name), nixostest.Patch(t, name), 0o644); err != nil {
		t.Fatal(err)
	}
	appendLine(t, ws, `{"action": "controller_run", "error": null, "execute": true, "goal": "g", "mode": "execute", "passed": true, "path": "`+strings.TrimSuffix(agentixtest.OrigRoot, "/")+`", "proposal_saved": "`+agentixtest.OrigRoot+proposalsRel+name+`", "result": "ok", "source_modified": false, "timestamp": "2026-11-25T16:58:35.430106+00:00"}`)
	waitFor(t, 2*time.Second, "the controller run ingested", func() bool {
		w, _ := d.detail().workspace(ws)
		return w.Lines == 1
	})
	nixostest.ApplyIndex(t, ws, filepath.Join(ws, proposalsRel, name))
	appendLine(t, ws, agentixtest.ApplyLine(proposalsRel+name))
	waitFor(t, 2*time.Second, "the apply ingested", func() bool {
		w, _ := d.detail().workspace(ws)
		return w.Lines == 2
	})
	applies, err := d.n.Attest.Search(attest.Query{PredicateType: attest.PredicateApply})
	if err != nil || len(applies) != 1 {
		t.Fatalf("apply/v1 attestations: %d, %v; want 1", len(applies), err)
	}

	// The switch: build the new system, record generation 2, retarget.
	next := nixostest.Build(t, ws, chain.DefaultAttr(host))
	if next == genesis {
		t.Fatal("applying foo did not change the toplevel")
	}
	if err := os.Symlink(next, filepath.Join(profiles, "system-2-link")); err != nil {
		t.Fatal(err)
	}
	switchTo(t, link, next)
	took := waitFor(t, 60*time.Second, "the new system imported and attested", func() bool {
		return d.detail().Follow.RunningSystem.Attested == next
	})
	t.Logf("new system imported and attested %v after the switch", took)
	det := d.detail()
	if det.Status != "ok" || det.Follow.RunningSystem.Unproven != "" {
		t.Fatalf("after the switch: %+v", det)
	}
	rcs := d.runningConfigs()
	last := rcs[len(rcs)-1]
	if len(rcs) != 2 || last.Configuration == nil || len(last.Configuration.Applies) != 1 || last.Configuration.Applies[0] != applies[0].ID ||
		last.Configuration.Extends.RunningConfig == "" || last.Generation != 2 {
		t.Fatalf("running-configs %+v: want a second one, generation 2, extending the first with the apply %s", rcs, applies[0].ID)
	}

	// The auditor proves the chain, over the daemon's HTTP surface.
	pb, err := node.OwnTrustPolicy(dir, d.n.Config)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := attest.ParsePolicy(pb)
	if err != nil {
		t.Fatal(err)
	}
	st, err := verify.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := verify.CheckNode(ctx, d.url, pol, verify.NodeOptions{State: st, TempDir: t.TempDir()})
	if !r.OK {
		t.Fatalf("not proven: failures %+v uncertain %+v", r.Failures, r.Uncertain)
	}
	want := "configuration of " + ws + " proven"
	for _, p := range r.Proven {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Fatalf("no proven claim contains %q: %q", want, r.Proven)
}

// TestNoRunningSystemFollowsWorkspacesOnly: with NoRunningSystem (the NixOS
// module's attestRunningSystem = false) the workspaces are still ingested,
// but the running system is neither imported nor attested.
func TestNoRunningSystemFollowsWorkspacesOnly(t *testing.T) {
	nixostest.Need(t)
	sys := nixostest.Build(t, nixostest.NewWorkspace(t, host), chain.DefaultAttr(host))
	link := filepath.Join(t.TempDir(), "current-system")
	switchTo(t, link, sys)
	dir := initNode(t, host)
	ws := agentixtest.Workspace(t, agentixtest.SampleLines(t)[:1])
	addWorkspace(t, dir, node.WorkspaceConfig{Path: ws})
	d := serve(t, dir, follow.Options{RunningSystem: link, NoRunningSystem: true})
	waitFor(t, 5*time.Second, "the workspace ingested", func() bool {
		w, _ := d.detail().workspace(ws)
		return w.Lines == 1
	})
	time.Sleep(1500 * time.Millisecond) // a running-system follower would have attested by now
	if rs := d.detail().Follow.RunningSystem; rs.Attested != "" || rs.Path != "" {
		t.Fatalf("running system followed anyway: %+v", rs)
	}
	if rcs := d.runningConfigs(); len(rcs) != 0 {
		t.Fatalf("%d running-configs published, want none", len(rcs))
	}
}
