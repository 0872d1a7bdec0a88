package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/agentix/agentix-store/internal/clitest"
	"github.com/agentix/agentix-store/internal/nixostest"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentix/agentix-store/closure/nixtest"
)

var binDir string

func TestMain(m *testing.M) {
	store, _, err := clitest.Binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = filepath.Dir(store)
	os.Exit(m.Run())
}

type res struct {
	out, err []byte
	code     int
}

func runBin(t *testing.T, bin string, stdin []byte, args ...string) res {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = append(os.Environ(), "AGENTIX_STORE_DIR=", "AGENTIX_VERIFY_STATE=")
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
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return res{so.Bytes(), se.Bytes(), code}
}

// store runs agentix-store on dir and fails the test unless it exits 0.
func store(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	r := runBin(t, "agentix-store", nil, append([]string{"--dir", dir}, args...)...)
	if r.code != 0 {
		t.Fatalf("agentix-store %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

type keys struct {
	Name        string `json:"name"`
	AttestPEM   string `json:"attestation_key_pem"`
	AttestKeyID string `json:"attestation_key_id"`
	LogOrigin   string `json:"log_origin"`
	LogKey      string `json:"log_key"`
	WitnessKey  string `json:"witness_key"`
	NixKey      string `json:"nix_key"`
}

type daemon struct {
	dir, url string
	cmd      *exec.Cmd
	done     chan error
}

// start runs `agentix-store serve` on dir on a free loopback port.
func start(t *testing.T, dir string) *daemon {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "agentix-store"), "--dir", dir, "serve", "--listen", "127.0.0.1:0", "--no-follow")
	cmd.Env = append(os.Environ(), "AGENTIX_STORE_DIR=")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{dir: dir, cmd: cmd, done: make(chan error, 1)}
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`addr=(http://[0-9.:]+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	go func() { d.done <- cmd.Wait() }()
	select {
	case d.url = <-found:
	case err := <-d.done:
		t.Fatalf("daemon on %s exited: %v", dir, err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start")
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	if d.cmd.ProcessState != nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("daemon %s did not stop on SIGINT", d.dir)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// cosigners counts the signature lines of a checkpoint note by the given
// key names.
func cosigners(note string, names ...string) int {
	n := 0
	for _, name := range names {
		if strings.Contains(note, "\n— "+name+" ") {
			n++
		}
	}
	return n
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v %s", src, dst, err, out)
	}
}

// TestThreeNodes: node A ingests an Agentix workspace and a Nix closure and
// publishes attestations; B and C witness A's checkpoints; B pins A's
// closure and serves it to `nix copy`; an auditor verifies A; then A's log
// is forked and both the witnesses and the auditor detect it.
const (
	fooPatch = "20261125-165835-worktree-create-module-foo-with-template-packages.patch"
	barPatch = "20261125-165837-worktree-create-module-bar-with-template-packages.patch"
)

func TestThreeNodes(t *testing.T) {
	nix := nixtest.Require(t)
	tmp := t.TempDir()
	dirA, dirB, dirC := filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "c")
	k := map[string]keys{}
	for name, dir := range map[string]string{"a": dirA, "b": dirB, "c": dirC} {
		store(t, dir, "init", "--name", "node-"+name)
		var pk keys
		if err := json.Unmarshal(store(t, dir, "key", "show", "--json"), &pk); err != nil {
			t.Fatal(err)
		}
		k[name] = pk
	}
	// B and C witness A's log.
	for _, dir := range []string{dirB, dirC} {
		store(t, dir, "config", "peer-add", "--vkey", k["a"].LogKey)
	}
	b, c := start(t, dirB), start(t, dirC)
	store(t, dirA, "config", "witness-add", "--url", b.url+"/log", "--vkey", k["b"].WitnessKey)
	store(t, dirA, "config", "witness-add", "--url", c.url+"/log", "--vkey", k["c"].WitnessKey)

	// A's operator keeps the nixos-config as a git-repo flake; its
	// genesis is recorded, then the Agentix ladder runs in it (the sample
	// audit log: the foo proposal saved and applied) and A ingests it.
	nixostest.Need(t)
	ws := nixostest.NewWorkspace(t, "node-a")
	store(t, dirA, "config", "genesis", ws)
	if err := os.MkdirAll(filepath.Join(ws, ".agentix", "proposals"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fooPatch, barPatch} {
		if err := os.WriteFile(filepath.Join(ws, ".agentix", "proposals", p), nixostest.Patch(t, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nixostest.ApplyIndex(t, ws, filepath.Join(ws, ".agentix", "proposals", fooPatch))
	jsonl, err := os.ReadFile("../testdata/agentix/workspace-basic/audit.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), jsonl, 0o644); err != nil {
		t.Fatal(err)
	}
	store(t, dirA, "ingest", ws)

	// The fork point: a copy of A as it is now.
	dirFork := filepath.Join(tmp, "a-fork")
	copyDir(t, dirA, dirFork)

	// A imports and attests a Nix closure.
	paths := nix.Build(
		nixtest.Drv{Name: "e2e-lib", Script: "/bin/mkdir -p $out/lib; echo library > $out/lib/data; /bin/ln -s data $out/lib/link"},
		nixtest.Drv{Name: "e2e-system", Script: "/bin/mkdir -p $out/bin; echo \"#!/bin/sh\" > $out/bin/run; echo ${e2e-lib} >> $out/bin/run; /bin/chmod +x $out/bin/run"},
	)
	system := paths[1]
	var imp struct {
		Closure string `json:"closure"`
	}
	if err := json.Unmarshal(store(t, dirA, "closure", "import", "--json", system), &imp); err != nil || imp.Closure == "" {
		t.Fatalf("closure import: %v %+v", err, imp)
	}
	// A rebuilds its system from the workspace and attests it with the
	// configuration chain.
	toplevel := nixostest.Build(t, ws, "nixosConfigurations.node-a.config.system.build.toplevel")
	var top struct {
		Closure string `json:"closure"`
	}
	if err := json.Unmarshal(store(t, dirA, "closure", "import", "--json", toplevel), &top); err != nil || top.Closure == "" {
		t.Fatalf("closure import %s: %v %+v", toplevel, err, top)
	}
	store(t, dirA, "closure", "attest", "--workspace", ws, top.Closure)

	a := start(t, dirA)
	// Both witnesses cosign A's latest checkpoint.
	deadline := time.Now().Add(30 * time.Second)
	var cp string
	for {
		cp = httpGet(t, a.url+"/log/checkpoint")
		if cosigners(cp, k["b"].Name+"-witness", k["c"].Name+"-witness") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's checkpoint was not cosigned by both witnesses:\n%s", cp)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// B pins A's closure by store path and serves it to plain Nix.
	var pin struct {
		Closure *struct{ Paths int } `json:"closure"`
	}
	if err := json.Unmarshal(store(t, dirB, "pin", "add", "--json", "--from", a.url, system), &pin); err != nil || pin.Closure == nil || pin.Closure.Paths != 2 {
		t.Fatalf("B pin add --from A %s: %v %+v", system, err, pin)
	}
	target := filepath.Join(tmp, "target-store")
	nix.Run("nix", "copy", "--from", b.url+"/nix", "--to", target,
		"--option", "trusted-public-keys", k["b"].NixKey, system)
	nix.Run("nix", "store", "verify", "--store", target, "--sigs-needed", "1",
		"--option", "trusted-public-keys", k["b"].NixKey, system)

	// The auditor: A's trust policy plus B and C as witnesses, quorum 2.
	var pol map[string]any
	raw, err := os.ReadFile(filepath.Join(dirA, "trust-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(raw, &pol)
	pol["witnesses"] = map[string]any{"quorum": 2, "keys": []string{k["b"].WitnessKey, k["c"].WitnessKey}}
	polFile := filepath.Join(tmp, "policy.json")
	polBytes, _ := json.MarshalIndent(pol, "", "  ")
	os.WriteFile(polFile, polBytes, 0o644)
	state := filepath.Join(tmp, "auditor")
	r := runBin(t, "agentix-verify", nil, "--state", state, "node", a.url, "--policy", polFile)
	if r.code != 0 || !bytes.Contains(r.out, []byte("configuration of "+ws+" proven")) {
		t.Fatalf("agentix-verify node A: exit %d, want 0 with the configuration proven\n%s%s", r.code, r.out, r.err)
	}
	t.Logf("auditor on A:\n%s", r.out)

	// The fork: A's copy from before the closure, grown differently.
	a.stop(t)
	fork := start(t, dirFork)
	for i := 0; i < 5; i++ {
		runBin(t, "agentix-store", []byte(fmt.Sprintf("forked entry %d", i)), "--dir", dirFork, "log", "append", "-")
	}
	time.Sleep(2 * time.Second) // let the fork ask the witnesses
	fcp := httpGet(t, fork.url+"/log/checkpoint")
	if n := cosigners(fcp, k["b"].Name+"-witness", k["c"].Name+"-witness"); n != 0 {
		t.Fatalf("witnesses cosigned a forked checkpoint (%d cosignatures):\n%s", n, fcp)
	}
	for _, w := range []*daemon{b, c} {
		m := httpGet(t, w.url+"/metrics")
		if !strings.Contains(m, `agentix_verification_failures_total{route="log/add-checkpoint"}`) {
			t.Errorf("witness %s did not count the refused fork", w.dir)
		}
	}
	// An auditor requiring the witnesses refuses the fork's checkpoint...
	r = runBin(t, "agentix-verify", nil, "--state", state, "log", fork.url+"/log", "--policy", polFile)
	if r.code != 1 || !bytes.Contains(r.out, []byte("witness")) {
		t.Fatalf("agentix-verify log on the fork: exit %d, want 1 for the missing witness quorum\n%s%s", r.code, r.out, r.err)
	}
	// ...and even one trusting no witness detects it from what it accepted
	// before: the fork's tree is not consistent with A's.
	r = runBin(t, "agentix-verify", nil, "--state", state, "log", fork.url+"/log", "--policy", filepath.Join(dirA, "trust-policy.json"))
	if r.code != 1 {
		t.Fatalf("agentix-verify log on the fork (no witnesses): exit %d, want 1\n%s%s", r.code, r.out, r.err)
	}
	t.Logf("auditor on the fork:\n%s", r.out)
	if !regexp.MustCompile(`(?i)split|inconsistent|consisten|fork|rollback`).Match(append(r.out, r.err...)) {
		t.Errorf("the auditor's report does not name the fork:\n%s%s", r.out, r.err)
	}
}
