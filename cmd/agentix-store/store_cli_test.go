package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mod251(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func TestAddCatRoundTrip(t *testing.T) {
	dir := initDir(t)
	data := mod251(5242887)
	f := filepath.Join(t.TempDir(), "mod251.bin")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		// Kubo 0.44 CIDs (testdata/kubo-golden.tsv).
		{[]string{"add", f}, "bafybeifzdz62h3lglc5jnqff2i2jtlmgvxtv6g6f2atraqkc6iiw2bfxfm"},
		{[]string{"add", "--chunker", "buzhash", f}, "bafybeic7bb2vdjqg2dpd7kxg4cflfgs7xdwxlok7biuxyrauk3pmhmzupa"},
		{[]string{"add", "--chunker", "size-1048576", "-"}, "bafybeihy7bim22kxffmtbte3avvzbwyyyjidvhaebjckpy4xkkxtuwdwga"},
	}
	for _, c := range cases {
		out := ok(t, dir, data, c.args...)
		if got := strings.Fields(string(out)); len(got) == 0 || got[0] != c.want {
			t.Fatalf("%v: got %q, want %s", c.args, out, c.want)
		}
		back := ok(t, dir, nil, "cat", c.want)
		if !bytes.Equal(back, data) {
			t.Fatalf("cat %s: %d bytes differ from the %d added", c.want, len(back), len(data))
		}
	}
	part := ok(t, dir, nil, "cat", "--offset", "1000000", "--length", "300000", cases[0].want)
	if !bytes.Equal(part, data[1000000:1300000]) {
		t.Fatalf("ranged cat returned wrong bytes (%d)", len(part))
	}
	var res []struct{ CID string }
	if err := json.Unmarshal(ok(t, dir, data, "add", "--json", "-"), &res); err != nil || len(res) != 1 || res[0].CID != cases[0].want {
		t.Fatalf("add --json: %v %+v", err, res)
	}
}

func TestPinGCAndCARAcrossNodes(t *testing.T) {
	a := initDir(t)
	b := initDir(t)
	data := mod251(1 << 20)
	root := strings.Fields(string(ok(t, a, data, "add", "-")))[0]
	junk := strings.Fields(string(ok(t, a, []byte("unpinned junk"), "add", "--pin=false", "-")))[0]

	var gc struct{ Removed int }
	if err := json.Unmarshal(ok(t, a, nil, "gc", "--json"), &gc); err != nil || gc.Removed != 1 {
		t.Fatalf("gc: %v removed %d, want 1 (the unpinned block)", err, gc.Removed)
	}
	if r := run(t, a, nil, "cat", junk); r.code == 0 {
		t.Fatalf("unpinned block survived gc")
	}
	if !bytes.Equal(ok(t, a, nil, "cat", root), data) {
		t.Fatal("pinned file damaged by gc")
	}

	for _, v := range []string{"1", "2"} {
		car := ok(t, a, nil, "car", "export", "--version", v, root)
		dst := initDir(t)
		ok(t, dst, car, "car", "import", "-")
		if !bytes.Equal(ok(t, dst, nil, "cat", root), data) {
			t.Fatalf("CARv%s round trip lost bytes", v)
		}
		_ = b
	}

	// A CAR with one flipped byte is refused and stores nothing.
	car := ok(t, a, nil, "car", "export", root)
	bad := bytes.Clone(car)
	bad[len(bad)-10] ^= 0xff
	var st0, st1 struct{ Blocks int }
	json.Unmarshal(ok(t, b, nil, "stat", "--json"), &st0)
	if r := run(t, b, bad, "car", "import", "-"); r.code != 1 || len(r.stderr) == 0 {
		t.Fatalf("corrupt CAR: exit %d, stderr %q", r.code, r.stderr)
	}
	json.Unmarshal(ok(t, b, nil, "stat", "--json"), &st1)
	if st1.Blocks != st0.Blocks {
		t.Fatalf("rejected CAR left %d blocks behind", st1.Blocks-st0.Blocks)
	}

	ok(t, a, nil, "pin", "rm", root)
	if err := json.Unmarshal(ok(t, a, nil, "gc", "--json"), &gc); err != nil || gc.Removed != 5 {
		t.Fatalf("gc after unpin removed %d, want 5 (4 leaves + root)", gc.Removed)
	}
}

// startDaemon runs `agentix-store serve` on a free loopback port and returns
// its base URL; the daemon is stopped with SIGTERM at the end of the test.
func startDaemon(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "--dir", dir, "serve", "--listen", "127.0.0.1:0", "--no-follow")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrRE := regexp.MustCompile(`addr=(http://[0-9.:]+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon exited with %v after SIGINT", err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("daemon did not stop within 15s of SIGINT")
		}
	})
	select {
	case u := <-found:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not report its address")
	}
	return ""
}

func TestServeHealthzAndGateway(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh") // serve initialises on first run
	// Add before serving: the daemon holds the data dir while it runs.
	ok(t, dir, nil, "init")
	data := mod251(300000)
	root := strings.Fields(string(ok(t, dir, data, "add", "-")))[0]

	base := startDaemon(t, dir)
	get := func(path, accept string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := get("/healthz", ""); resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, b)
	}
	resp, b := get("/ipfs/"+root+"?format=car", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.ipld.car") {
		t.Fatalf("format=car: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	dst := initDir(t)
	ok(t, dst, b, "car", "import", "-")
	if !bytes.Equal(ok(t, dst, nil, "cat", root), data) {
		t.Fatal("CAR from the gateway does not hold the file")
	}
	resp, raw := get("/ipfs/"+root, "application/vnd.ipld.raw")
	if resp.StatusCode != 200 || len(raw) == 0 || len(raw) > 1000 {
		t.Fatalf("raw root block: %d, %d bytes", resp.StatusCode, len(raw))
	}
	if resp, _ := get("/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku?format=raw", ""); resp.StatusCode < 400 {
		t.Fatalf("missing block answered %d", resp.StatusCode)
	}
	// While the daemon runs, store commands reach the node through its API.
	data2 := mod251(700000)
	root2 := strings.Fields(string(ok(t, dir, data2, "add", "-")))[0]
	if !bytes.Equal(ok(t, dir, nil, "cat", root2), data2) {
		t.Fatal("add/cat through the daemon lost bytes")
	}
	var st struct{ Blocks, Pins int }
	if err := json.Unmarshal(ok(t, dir, nil, "stat", "--json"), &st); err != nil || st.Pins != 2 {
		t.Fatalf("stat through the daemon: %v %+v", err, st)
	}
	// Writes without the token are refused and store nothing.
	for _, p := range []string{"/api/v1/add", "/api/v1/blocks", "/api/v1/car", "/api/v1/gc", "/api/v1/pins/" + root2, "/api/v1/log/append"} {
		resp, err := http.Post(base+p, "application/octet-stream", strings.NewReader("sneaky"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("unauthenticated POST %s: %d, want 401", p, resp.StatusCode)
		}
	}
	var st2 struct{ Blocks, Pins int }
	json.Unmarshal(ok(t, dir, nil, "stat", "--json"), &st2)
	if st2 != st {
		t.Fatalf("refused writes changed the store: %+v -> %+v", st, st2)
	}
	// Log reads go through the daemon; init, which works on the data
	// directory itself, refuses and names it.
	if r := run(t, dir, nil, "log", "checkpoint"); r.code != 0 {
		t.Fatalf("log checkpoint while serving: exit %d, stderr %q", r.code, r.stderr)
	}
	r := run(t, dir, nil, "init")
	if r.code != 1 || !bytes.Contains(r.stderr, []byte(dir)) || !bytes.Contains(r.stderr, []byte("stop the daemon")) {
		t.Fatalf("init while serving: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Operator B pins a DAG held by operator A's daemon; every block is
// verified on the way in.
func TestPinFromPeer(t *testing.T) {
	a := initDir(t)
	data := mod251(2<<20 + 7)
	root := strings.Fields(string(ok(t, a, data, "add", "-")))[0]
	base := startDaemon(t, a)

	b := initDir(t)
	var res struct {
		Root    string
		Fetched int
		Present int
	}
	if err := json.Unmarshal(ok(t, b, nil, "pin", "add", "--json", "--from", base, "--name", "from-a", root), &res); err != nil || res.Root != root || res.Fetched != 10 {
		t.Fatalf("pin add --from: %v %+v", err, res)
	}
	if !bytes.Equal(ok(t, b, nil, "cat", root), data) {
		t.Fatal("pinned DAG lost bytes")
	}
	if !bytes.Contains(ok(t, b, nil, "pin", "ls"), []byte("from-a")) {
		t.Fatal("pin not listed with its name")
	}
	// Again: nothing to fetch.
	if err := json.Unmarshal(ok(t, b, nil, "pin", "add", "--json", "--from", base, root), &res); err != nil || res.Fetched != 0 || res.Present != 10 {
		t.Fatalf("second pin add --from: %v %+v", err, res)
	}
	for _, args := range [][]string{
		{"pin", "add", "--from", "ftp://nope", root},
		{"pin", "add", "--from", base, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
	} {
		if r := run(t, b, nil, args...); r.code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
	if r := run(t, b, nil, "pin", "add", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"); r.code != 2 {
		t.Errorf("store path without --from: exit %d", r.code)
	}
}

// An operator whose key is in the node's trust policy writes to the node's
// daemon from elsewhere with signed requests; a stranger cannot.
func TestRemoteSignedWrites(t *testing.T) {
	dir := initDir(t)
	op := filepath.Join(t.TempDir(), "operator.key")
	ok(t, dir, nil, "key", "generate", "--output", op)
	pub, _ := os.ReadFile(op + ".pub")
	// Name the operator as an approver in the node's trust policy.
	polFile := filepath.Join(dir, "trust-policy.json")
	var pol map[string]any
	raw, _ := os.ReadFile(polFile)
	json.Unmarshal(raw, &pol)
	pol["approvers"] = map[string]any{"threshold": 1, "keys": []any{map[string]any{"name": "op", "publicKey": string(pub)}}}
	raw, _ = json.Marshal(pol)
	os.WriteFile(polFile, raw, 0o644)
	ok(t, dir, nil, "init") // keeps the edited trust policy
	if b, _ := os.ReadFile(polFile); !bytes.Equal(b, raw) {
		t.Fatal("init rewrote an existing trust policy")
	}
	base := startDaemon(t, dir)
	elsewhere := t.TempDir()
	data := mod251(100000)
	out := ok(t, elsewhere, data, "--node", base, "--sign-key", op, "add", "-")
	root := strings.Fields(string(out))[0]
	if !bytes.Equal(ok(t, elsewhere, nil, "--node", base, "cat", root), data) {
		t.Fatal("remote cat lost bytes")
	}
	stranger := filepath.Join(t.TempDir(), "stranger.key")
	ok(t, dir, nil, "key", "generate", "--output", stranger)
	if r := run(t, elsewhere, []byte("nope"), "--node", base, "--sign-key", stranger, "add", "-"); r.code != 1 || !bytes.Contains(r.stderr, []byte("401")) {
		t.Fatalf("stranger's signed add: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, elsewhere, []byte("nope"), "--node", base, "add", "-"); r.code != 1 || !bytes.Contains(r.stderr, []byte("401")) {
		t.Fatalf("unsigned remote add: exit %d %s", r.code, r.stderr)
	}
}
