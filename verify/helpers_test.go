package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/daemon"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
)

// testNode is a real node (internal/node on disk) served by the real
// daemon handler on an httptest server.
type testNode struct {
	dir    string
	n      *node.Node
	srv    *httptest.Server
	signer *attest.Signer
	pub    *attest.Publisher
	policy *attest.Policy
}

func initNodeDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := node.Init(dir, node.InitOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyDir clones an initialised (never opened) node directory, keys and all.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func openNode(t testing.TB, dir string) *testNode { return openNodeWith(t, dir, nil) }

// openNodeWith is openNode, calling hook (if not nil) on the opened node
// before the daemon is built over it.
func openNodeWith(t testing.TB, dir string, hook func(*node.Node)) *testNode {
	t.Helper()
	n, err := node.Open(dir, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(n)
	}
	h, err := daemon.Handler(n, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); n.Close() })
	s, err := attest.LoadSigner(filepath.Join(dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := node.OwnTrustPolicy(dir, n.Config)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := attest.ParsePolicy(pb)
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{dir: dir, n: n, srv: srv, signer: s, policy: pol,
		pub: &attest.Publisher{Blocks: n.Store.Blockstore(), Log: n.Log, Index: n.Attest}}
}

// proposal publishes a proposal/v1 attestation over a stored patch.
func (tn *testNode) proposal(t testing.TB, body string) attest.Published {
	t.Helper()
	env := tn.proposalEnvelope(t, body, tn.signer)
	p, err := tn.pub.Publish(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (tn *testNode) proposalEnvelope(t testing.TB, body string, signers ...*attest.Signer) []byte {
	t.Helper()
	ctx := context.Background()
	c, err := tn.n.Store.Add(ctx, bytes.NewReader([]byte(body)), store.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return proposalEnvelope(t, c, []byte(body), signers...)
}

func proposalEnvelope(t testing.TB, c cid.Cid, body []byte, signers ...*attest.Signer) []byte {
	t.Helper()
	sum := sha256sum(body)
	rd := attest.Subject(c, sum, "proposals/p.patch")
	_, payload, err := attest.NewStatement(attest.PredicateProposal, []attest.ResourceDescriptor{rd}, attest.ProposalPredicate{
		Workspace: "/home/operator/nixos-config",
		Patch:     attest.PatchRef{CID: c.String(), SHA256: rd.SHA256(), Path: "proposals/p.patch"},
		AuditLine: attest.AuditLine{Snapshot: c.String(), Line: 1},
		Action:    "controller_run",
	})
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.SignEnvelope(context.Background(), attest.PayloadType, payload, signers...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (tn *testNode) logURL() string { return tn.srv.URL + "/log/" }

// mirror copies the log as served now (checkpoint, tiles, entry bundles)
// into a directory of static tiles.
func mirror(t testing.TB, url string) string {
	t.Helper()
	ctx := context.Background()
	src, err := OpenLogSource(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(p string, b []byte) {
		fp := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cpb, err := src.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(layout.CheckpointPath, cpb)
	size := checkpointSize(t, cpb)
	for level := uint64(0); ; level++ {
		n := size >> (8 * level)
		if n == 0 {
			break
		}
		for i := uint64(0); i*256 < n; i++ {
			w := min(n-i*256, 256)
			p := uint8(w % 256)
			b, err := src.ReadTile(ctx, level, i, p)
			if err != nil {
				t.Fatalf("tile %d/%d: %v", level, i, err)
			}
			write(layout.TilePath(level, i, p), b)
		}
	}
	for i := uint64(0); i*256 < size; i++ {
		w := min(size-i*256, 256)
		p := uint8(w % 256)
		b, err := src.ReadEntryBundle(ctx, i, p)
		if err != nil {
			t.Fatal(err)
		}
		write(layout.EntriesPath(i, p), b)
	}
	return dir
}

func checkpointSize(t testing.TB, note []byte) uint64 {
	lines := bytes.SplitN(note, []byte("\n"), 3)
	var n uint64
	if _, err := fmt.Sscan(string(lines[1]), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func sha256sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func stringsReader(s string) *bytes.Reader { return bytes.NewReader([]byte(s)) }

func storeAddOptions() store.AddOptions { return store.AddOptions{} }
