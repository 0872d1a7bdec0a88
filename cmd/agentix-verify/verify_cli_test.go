package main

import (
	"bytes"
	"context"
	"errors"
	"github.com/agentix/agentix-store/internal/clitest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/node"
)

// TestCLIExitCodes drives the real binary: 0 for a proven bundle, 1 for a
// tampered one, 2 for a missing --policy, 3 for an unreachable log.
func TestCLIExitCodes(t *testing.T) {
	_, bin, err := clitest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "n")
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := attest.LoadSigner(filepath.Join(dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	c, sum := attest.ID([]byte("patch")), []byte("0123456789abcdef0123456789abcdef")
	rd := attest.Subject(c, sum, "p.patch")
	pubr := &attest.Publisher{Blocks: n.Store.Blockstore(), Log: n.Log, Index: n.Attest}
	pub, err := pubr.Attest(ctx, s, attest.PredicateProposal, []attest.ResourceDescriptor{rd}, attest.ProposalPredicate{
		Workspace: "/w", Patch: attest.PatchRef{CID: c.String(), SHA256: rd.SHA256()},
		AuditLine: attest.AuditLine{Snapshot: c.String(), Line: 0}, Action: "controller_run"})
	if err != nil {
		t.Fatal(err)
	}
	bb := &attest.BundleBuilder{Blocks: n.Store.Blockstore(), Index: n.Attest, Log: n.Log}
	bu, err := bb.Build(ctx, pub.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := bu.Marshal()
	bu.LogIndex++
	bad, _ := bu.Marshal()
	pol, _ := node.OwnTrustPolicy(dir, n.Config)
	n.Close()
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	polf, goodf, badf := write("policy.json", pol), write("good.json", good), write("bad.json", bad)
	state := filepath.Join(tmp, "state")
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"bundle", goodf, "--policy", polf}, 0, "PROVEN"},
		{[]string{"bundle", badf, "--policy", polf}, 1, "inclusion-proof"},
		{[]string{"--json", "bundle", badf, "--policy", polf}, 1, `"reason": "inclusion-proof"`},
		{[]string{"bundle", goodf}, 2, ""},
		{[]string{"bogus"}, 2, ""},
		{[]string{}, 2, ""},
		{[]string{"log", "http://127.0.0.1:1/log/", "--policy", polf, "--state", state}, 3, "NOT CHECKED"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !bytes.Contains(out.Bytes(), []byte(c.out)) {
			t.Errorf("%v: exit %d, want %d; output:\n%s", c.args, code, c.code, out.String())
		}
	}
}
