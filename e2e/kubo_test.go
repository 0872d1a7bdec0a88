package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubo finds a Kubo binary: $KUBO_BIN, else `ipfs` on $PATH. Without one
// the test is skipped, unless AGENTIX_REQUIRE_KUBO is set (.ci/run sets it
// when .ci/install-kubo built Kubo), in which case it fails.
func kubo(t *testing.T) string {
	if b := os.Getenv("KUBO_BIN"); b != "" {
		return b
	}
	if b, err := exec.LookPath("ipfs"); err == nil {
		return b
	}
	if os.Getenv("AGENTIX_REQUIRE_KUBO") != "" {
		t.Fatal("AGENTIX_REQUIRE_KUBO is set but no Kubo binary ($KUBO_BIN or ipfs on $PATH)")
	}
	t.Skip("Kubo not installed (.ci/install-kubo builds it; set KUBO_BIN); skipping pin push test")
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPinPushKubo: a DAG on this node is imported into a real Kubo node and
// pinned there; Kubo then serves the same bytes under the same CID.
func TestPinPushKubo(t *testing.T) {
	ipfs := kubo(t)
	repo := filepath.Join(t.TempDir(), "ipfs")
	env := append(os.Environ(), "IPFS_PATH="+repo)
	runIPFS := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(ipfs, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	runIPFS("init", "--profile", "test")
	api := freePort(t)
	runIPFS("config", "Addresses.API", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", api))
	runIPFS("config", "Addresses.Gateway", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t)))
	daemon := exec.Command(ipfs, "daemon", "--offline")
	daemon.Env = env
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Signal(os.Interrupt); daemon.Wait() })
	rpc := fmt.Sprintf("http://127.0.0.1:%d", api)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", api)); err == nil {
			c.Close()
			break
		}
		if i > 300 {
			t.Fatal("Kubo's RPC API did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}

	dir := filepath.Join(t.TempDir(), "node")
	store(t, dir, "init")
	data := bytes.Repeat([]byte("sovereign nodes pin each other's closures\n"), 40000)
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, data, 0o644)
	root := strings.Fields(string(store(t, dir, "add", f)))[0]
	store(t, dir, "pin", "push", "--kubo", rpc, root)

	if out := runIPFS("pin", "ls", "--type=recursive", root); !bytes.Contains(out, []byte(root)) {
		t.Fatalf("Kubo does not list a recursive pin on %s: %s", root, out)
	}
	if got := runIPFS("cat", root); !bytes.Equal(got, data) {
		t.Fatalf("Kubo's cat of %s differs from the added bytes", root)
	}
	// Kubo computes the same CID for the same bytes.
	if got := strings.TrimSpace(string(runIPFS("add", "-Q", "--cid-version=1", "--only-hash", f))); got != root {
		t.Fatalf("Kubo's CID %s, ours %s", got, root)
	}
	r := runBin(t, "agentix-store", nil, "--dir", dir, "pin", "push", "--kubo", "http://127.0.0.1:1", root)
	if r.code != 1 || !bytes.Contains(r.err, []byte("kubo")) {
		t.Fatalf("push to a dead Kubo: exit %d %s", r.code, r.err)
	}
}
