package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/agentix/agentix-store/internal/agentixtest"
	"github.com/agentix/agentix-store/internal/clitest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bin and verifyBin are the CLIs, built once per source state for every
// CLI test package (internal/clitest).
var bin, verifyBin string

func TestMain(m *testing.M) {
	var err error
	if bin, verifyBin, err = clitest.Binaries(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr []byte
	code           int
}

// run runs the binary with --dir dir and args, feeding stdin.
func run(t *testing.T, dir string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--dir", dir}, args...)...)
	cmd.Env = append(os.Environ(), "AGENTIX_STORE_DIR=", "XDG_DATA_HOME="+t.TempDir())
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{so.Bytes(), se.Bytes(), code}
}

// ok runs and fails the test unless the command exits 0.
func ok(t *testing.T, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	r := run(t, dir, stdin, args...)
	if r.code != 0 {
		t.Fatalf("agentix-store %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func initDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	ok(t, dir, nil, "init", "--name", "test-node")
	return dir
}

func TestInitNeverOverwritesKeys(t *testing.T) {
	dir := initDir(t)
	files := []string{"config.json", "token", "keys/attest.key", "keys/log.key", "keys/witness.key", "keys/nix.key", "trust-policy.json"}
	before := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("init did not create %s: %v", f, err)
		}
		before[f] = b
	}
	for _, f := range []string{"token", "keys/attest.key", "keys/log.key", "keys/nix.key"} {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	out := ok(t, dir, nil, "init", "--json")
	var res struct{ Created, Existing []string }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("init --json: %v\n%s", err, out)
	}
	for _, f := range files {
		after, _ := os.ReadFile(filepath.Join(dir, f))
		if !bytes.Equal(before[f], after) {
			t.Errorf("second init changed %s", f)
		}
	}
	for _, c := range res.Created {
		if strings.HasPrefix(c, "keys/") && strings.HasSuffix(c, ".key") || c == "token" {
			t.Errorf("second init reports creating %s", c)
		}
	}
	var pol struct {
		Logs []struct{ Origin, Key string }
	}
	if err := json.Unmarshal(before["trust-policy.json"], &pol); err != nil || len(pol.Logs) != 1 || pol.Logs[0].Origin == "" {
		t.Fatalf("trust-policy.json does not name the node's log: %v %s", err, before["trust-policy.json"])
	}
}

func TestKeyShow(t *testing.T) {
	dir := initDir(t)
	var pk struct {
		AttestationKeyID string `json:"attestation_key_id"`
		LogKey           string `json:"log_key"`
		NixKey           string `json:"nix_key"`
	}
	if err := json.Unmarshal(ok(t, dir, nil, "key", "show", "--json"), &pk); err != nil {
		t.Fatal(err)
	}
	if len(pk.AttestationKeyID) != 64 || !strings.HasPrefix(pk.LogKey, "agentix-store/test-node+") || !strings.HasPrefix(pk.NixKey, "test-node-1:") {
		t.Fatalf("unexpected keys: %+v", pk)
	}
}

func TestNotInitialised(t *testing.T) {
	r := run(t, filepath.Join(t.TempDir(), "nothing"), nil, "stat")
	if r.code != 1 || !bytes.Contains(r.stderr, []byte("not initialised")) {
		t.Fatalf("stat on an empty dir: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A malformed CID is a usage error even before the data dir is opened.
func TestBadCIDBeforeOpen(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "never-initialised")
	for _, args := range [][]string{{"cat", "not-a-cid"}, {"block", "stat", "zz"}, {"pin", "rm", "Qm"}, {"closure", "verify", "nope"}} {
		if r := run(t, empty, nil, args...); r.code != 2 {
			t.Errorf("%v on an empty dir: exit %d (%s), want 2", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(empty); err == nil {
		t.Error("a usage error created the data dir")
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	dir := initDir(t)
	for _, args := range [][]string{
		{"cat"},
		{"cat", "not-a-cid"},
		{"add", "--chunker"},
		{"car", "export", "--version", "3", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{"block", "put", "--codec", "nope", "-"},
		{"config", "bogus"},
		{"config"},
		{"log", "bogus"},
		{"closure", "bogus", "x"},
		{"bogus"},
	} {
		r := run(t, dir, []byte("x"), args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
	}
}

func TestKeyGenerateNeverOverwrites(t *testing.T) {
	dir := initDir(t)
	k := filepath.Join(t.TempDir(), "approver.key")
	var res struct {
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal(ok(t, dir, nil, "key", "generate", "--json", "--alg", "ecdsa-p256", "--output", k), &res); err != nil || len(res.KeyID) != 64 {
		t.Fatalf("key generate: %v %+v", err, res)
	}
	before, _ := os.ReadFile(k)
	if r := run(t, dir, nil, "key", "generate", "--output", k); r.code != 1 || !bytes.Contains(r.stderr, []byte("exists")) {
		t.Fatalf("second generate: exit %d, %q", r.code, r.stderr)
	}
	after, _ := os.ReadFile(k)
	if !bytes.Equal(before, after) {
		t.Fatal("key generate overwrote a key")
	}
	if r := run(t, dir, nil, "key", "generate", "--alg", "rsa", "--output", k+"2"); r.code != 2 {
		t.Fatalf("unknown alg: exit %d", r.code)
	}
}

func TestConfigApplyAndAdd(t *testing.T) {
	dir := initDir(t)
	other := initDir(t)
	var pk struct {
		LogKey     string `json:"log_key"`
		WitnessKey string `json:"witness_key"`
	}
	json.Unmarshal(ok(t, other, nil, "key", "show", "--json"), &pk)
	ok(t, dir, nil, "config", "witness-add", "--url", "http://127.0.0.1:9/log", "--vkey", pk.WitnessKey)
	if r := run(t, dir, nil, "config", "witness-add", "--url", "http://127.0.0.1:9/log", "--vkey", pk.WitnessKey); r.code == 0 {
		t.Fatal("duplicate witness accepted")
	}
	if r := run(t, dir, nil, "config", "peer-add", "--vkey", "garbage"); r.code != 2 {
		t.Fatalf("bad peer key: exit %d", r.code)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, "keys", "log.key"))
	over := fmt.Sprintf(`{"listen": "127.0.0.1:7272", "peers": [{"key": %q}], "witnesses": []}`, pk.LogKey)
	ok(t, dir, []byte(over), "config", "apply", "-")
	var cfg struct {
		Listen    string
		Witnesses []any
		Peers     []struct{ Origin, Key string }
	}
	json.Unmarshal(ok(t, dir, nil, "config", "show"), &cfg)
	if cfg.Listen != "127.0.0.1:7272" || len(cfg.Witnesses) != 0 || len(cfg.Peers) != 1 || cfg.Peers[0].Origin != "agentix-store/test-node" {
		t.Fatalf("config after apply: %+v", cfg)
	}
	if r := run(t, dir, []byte(`{"listen": 1}`), "config", "apply", "-"); r.code != 2 {
		t.Fatalf("bad override: exit %d", r.code)
	}
	if r := run(t, dir, []byte(`{"unknown": 1}`), "config", "apply", "-"); r.code != 2 {
		t.Fatalf("unknown field: exit %d", r.code)
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dir, "keys", "log.key"))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("config apply touched a key")
	}
}

// TestIngestBoundaryFileUnderPolicy: --policy now names the trust policy
// (as in agentix-verify); an old `ingest --policy BOUNDARY_FILE` is a usage
// error pointing to --boundary, never read as something else.
func TestIngestBoundaryFileUnderPolicy(t *testing.T) {
	dir := initDir(t)
	ws := agentixtest.Workspace(t, nil)
	b := filepath.Join(t.TempDir(), "boundary.json")
	os.WriteFile(b, []byte(`{"denyUnparseableLines": true}`), 0o644)
	r := run(t, dir, nil, "ingest", "--policy", b, ws)
	if r.code != 2 || !bytes.Contains(r.stderr, []byte("--boundary")) {
		t.Fatalf("ingest --policy BOUNDARY: exit %d, stderr %q; want 2 naming --boundary", r.code, r.stderr)
	}
	if r := run(t, dir, nil, "ingest", "--boundary", b, ws); r.code != 0 {
		t.Fatalf("ingest --boundary: exit %d, stderr %q", r.code, r.stderr)
	}
}
