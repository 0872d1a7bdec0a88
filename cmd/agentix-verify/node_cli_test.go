package main

import (
	"bytes"
	"context"
	"errors"
	"github.com/agentix/agentix-store/internal/clitest"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/daemon"
	"github.com/agentix/agentix-store/internal/node"
)

// TestCLINode drives the real binary against a real node served by the
// daemon: a healthy node (ingested sample workspace, closure imported from
// the committed binary cache, running config after the apply) exits 0;
// after the agent applies an unproposed patch, 1.
func TestCLINode(t *testing.T) {
	_, bin, err := clitest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "n")
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	s, err := attest.LoadSigner(filepath.Join(dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	polb, err := node.OwnTrustPolicy(dir, n.Config)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := attest.ParsePolicy(polb)
	if err != nil {
		t.Fatal(err)
	}
	pub := &attest.Publisher{Blocks: n.Store.Blockstore(), Log: n.Log, Index: n.Attest}

	// Workspace: the sample log and proposals under .agentix/.
	ws := t.TempDir()
	sample := "../../testdata/agentix/workspace-basic"
	if out, err := exec.Command("mkdir", "-p", filepath.Join(ws, ".agentix")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(sample, "proposals"), filepath.Join(sample, "audit.jsonl"), filepath.Join(ws, ".agentix")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	bp, err := audit.WithTrustPolicy(nil, tp)
	if err != nil {
		t.Fatal(err)
	}
	ing := audit.NewIngester(n.Store, n.DB)
	ing.Policy = bp
	ing.Attester = audit.PublisherAttester{Publisher: pub, Signer: s}
	if _, err := ing.Ingest(ctx, ws, audit.IngestOptions{Workspace: "ws"}); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../../closure/testdata/cache")
	cache, err := closure.NewBinaryCache(ctx, "file://"+abs, nil)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := closure.Import(ctx, n.Store, n.DB, cache, "/nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib", closure.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := n.Attest.Search(attest.Query{PredicateType: attest.PredicateApply})
	if err != nil || len(recs) != 1 {
		t.Fatalf("applies: %v, %v", recs, err)
	}
	env, err := closure.RunningConfig(ctx, n.Store, imp.Closure, closure.RunningConfigOptions{Applies: []string{recs[0].ID}}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	h, err := daemon.Handler(n, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tmp := t.TempDir()
	polf := filepath.Join(tmp, "policy.json")
	if err := os.WriteFile(polf, polb, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(want int, wantOut string) {
		t.Helper()
		cmd := exec.Command(bin, "node", srv.URL, "--policy", polf, "--state", filepath.Join(tmp, "state"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want || !bytes.Contains(out.Bytes(), []byte(wantOut)) {
			t.Fatalf("node: exit %d, want %d (output should contain %q):\n%s", code, want, wantOut, out.String())
		}
	}
	// A running-config/v1 proves the closure and the boundary, but not
	// which configuration the node runs: could not check (exit 3).
	run(3, "safety boundary of ws held")
	run(3, "configuration-unproven")

	// The agent applies a patch no controller run proposed; the node
	// ingests the grown log and the auditor's recomputation finds it.
	f, err := os.OpenFile(filepath.Join(ws, ".agentix", "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(`{"action": "apply", "patch": "/home/operator/nixos-config/.agentix/proposals/20261125-165835-create-module-foo.patch", "result": "applied", "timestamp": "2026-11-25T17:00:00.000000+00:00"}` + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ing.Ingest(ctx, ws, audit.IngestOptions{Workspace: "ws"}); err != nil {
		t.Fatal(err)
	}
	run(1, "controller-bypass")
}
