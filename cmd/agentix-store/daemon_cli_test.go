package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure/nixtest"
)

// daemonStep is one command of TestCommandsThroughDaemon. args may name
// values an earlier step found (env), as {NAME}.
type daemonStep struct {
	name     string
	args     []string
	wantCode int
	// read: the step changes nothing, so it is run again on the first
	// node while its daemon runs and must print the very same bytes.
	read bool
	// find, when set, records values from the step's stdout in env.
	find func(t *testing.T, out []byte, env map[string]string)
}

var placeholderRE = regexp.MustCompile(`\{[A-Z0-9_]+\}`)

func expand(args []string, env map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = placeholderRE.ReplaceAllStringFunc(a, func(p string) string { return env[p[1:len(p)-1]] })
	}
	return out
}

// Values that legitimately differ between two nodes (their keys sign
// different bytes, at other times): CIDs, key ids and hashes, base64, times.
var maskREs = []*regexp.Regexp{
	regexp.MustCompile(`baf[a-z2-7]{20,}`),
	regexp.MustCompile(`[0-9a-f]{64}`),
	regexp.MustCompile(`[A-Za-z0-9+/_-]{24,}={0,2}`),
	regexp.MustCompile(`policy [0-9a-f]{12}`), // the trust policy names each node's own keys
	regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`),
}

func mask(b []byte) string {
	s := string(b)
	for _, re := range maskREs {
		s = re.ReplaceAllString(s, "<…>")
	}
	return s
}

// TestCommandsThroughDaemon runs the same commands on two nodes set up
// alike: on the first with no daemon (the node opened in-process), on the
// second while its daemon holds the data directory (every command goes
// through the daemon's API with the local token). Exit codes and --json
// output must agree (up to ids and signatures, which differ between two
// nodes' keys); then the read commands run again on the first node with its
// daemon started and must print exactly what they printed without it.
func TestCommandsThroughDaemon(t *testing.T) {
	ws := sampleWorkspace(t)
	tmp := t.TempDir()
	badPolicy := filepath.Join(tmp, "bad-policy.json")
	os.WriteFile(badPolicy, []byte(`{"nope": `), 0o644)
	steps := []daemonStep{
		{name: "ingest, approvers missing", args: []string{"--json", "ingest", "--name", "w", "--policy", "{TP}", ws}, wantCode: 1,
			find: func(t *testing.T, out []byte, env map[string]string) {
				var r ingestJSON
				if err := json.Unmarshal(out, &r); err != nil || len(r.Boundary.Violations) == 0 || r.Boundary.Violations[0].PatchCID == "" {
					t.Fatalf("ingest: no violation naming a patch CID: %v\n%s", err, out)
				}
				env["PATCH"] = r.Boundary.Violations[0].PatchCID
			}},
		{name: "approve (patch record read through the node)", args: []string{"approve", "{PATCH}", "--key", "{K0}", "--output", "{TMP}/a.json"}},
		{name: "approve --in", args: []string{"approve", "{PATCH}", "--key", "{K1}", "--in", "{TMP}/a.json", "--output", "{TMP}/b.json"}},
		{name: "attest", args: []string{"--json", "attest", "{TMP}/b.json"},
			find: func(t *testing.T, out []byte, env map[string]string) {
				var p publishResult
				if err := json.Unmarshal(out, &p); err != nil {
					t.Fatal(err)
				}
				env["ID"] = p.ID
			}},
		{name: "ingest, approved", args: []string{"--json", "ingest", "--name", "w", "--policy", "{TP}", ws}},
		{name: "ingest, unchanged", args: []string{"--json", "ingest", "--name", "w", "--policy", "{TP}", "--verify", ws}},
		{name: "ingest human", args: []string{"ingest", "--name", "w", "--policy", "{TP}", ws}},
		{name: "ingest, no workspace", args: []string{"--json", "ingest", tmp}, wantCode: 2},
		{name: "ingest, bad policy", args: []string{"--json", "ingest", "--boundary", badPolicy, ws}, wantCode: 2},
		{name: "attestation ls", args: []string{"--json", "attestation", "ls"}, read: true},
		{name: "attestation search", args: []string{"--json", "attestation", "search", "--predicate-type", attest.PredicateApproval}, read: true},
		{name: "attestation ls human", args: []string{"attestation", "ls", "--subject", "{PATCH}"}, read: true},
		{name: "log checkpoint", args: []string{"--json", "log", "checkpoint"}, read: true},
		{name: "log checkpoint human", args: []string{"log", "checkpoint"}, read: true},
		{name: "log entries", args: []string{"--json", "log", "entries", "--from", "1", "--to", "3"}, read: true},
		{name: "log entries past the end", args: []string{"--json", "log", "entries", "--from", "1", "--to", "9999"}, read: true, wantCode: 1},
		{name: "log proof inclusion", args: []string{"--json", "log", "proof", "inclusion", "1"}, read: true},
		{name: "log proof inclusion of a missing entry", args: []string{"--json", "log", "proof", "inclusion", "9999"}, read: true, wantCode: 1},
		{name: "log proof consistency", args: []string{"--json", "log", "proof", "consistency", "1", "3"}, read: true},
		{name: "bundle", args: []string{"bundle", "{ID}", "--car"}, read: true},
		{name: "bundle of an unknown id", args: []string{"bundle", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, read: true, wantCode: 1},
		{name: "closure ls", args: []string{"--json", "closure", "ls"}, read: true},
		{name: "closure verify of a missing closure", args: []string{"--json", "closure", "verify", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, read: true, wantCode: 1},
		{name: "closure attest of a missing closure", args: []string{"--json", "closure", "attest", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, wantCode: 1},
		{name: "closure attest --attr without --workspace", args: []string{"closure", "attest", "--attr", "x", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, wantCode: 2},
	}
	setup := func(t *testing.T) (string, map[string]string) {
		dir := initDir(t)
		keys, tp := approverSetup(t, dir)
		return dir, map[string]string{"TP": tp, "K0": keys[0], "K1": keys[1], "TMP": t.TempDir()}
	}
	runAll := func(t *testing.T, dir string, env map[string]string) []result {
		var out []result
		for _, s := range steps {
			r := run(t, dir, nil, expand(s.args, env)...)
			if r.code != s.wantCode {
				t.Fatalf("%s: agentix-store %s: exit %d, want %d\nstdout: %s\nstderr: %s", s.name, strings.Join(expand(s.args, env), " "), r.code, s.wantCode, r.stdout, r.stderr)
			}
			if s.find != nil {
				s.find(t, r.stdout, env)
			}
			out = append(out, r)
		}
		return out
	}

	dirA, envA := setup(t)
	dirB, envB := setup(t)
	offline := runAll(t, dirA, envA)
	startDaemon(t, dirB)
	online := runAll(t, dirB, envB)
	for i, s := range steps {
		if a, b := mask(offline[i].stdout), mask(online[i].stdout); a != b {
			t.Errorf("%s: output differs through the daemon\nwithout: %s\nthrough: %s", s.name, a, b)
		}
	}
	// The daemon really held B's data dir: init there refuses.
	if r := run(t, dirB, nil, "init"); r.code != 1 || !bytes.Contains(r.stderr, []byte(dirB)) {
		t.Errorf("init while the daemon runs: exit %d, %s", r.code, r.stderr)
	}

	startDaemon(t, dirA)
	for i, s := range steps {
		if !s.read {
			continue
		}
		r := run(t, dirA, nil, expand(s.args, envA)...)
		if r.code != s.wantCode || !bytes.Equal(r.stdout, offline[i].stdout) {
			t.Errorf("%s on the same node through its daemon: exit %d (want %d)\nwithout: %s\nthrough: %s\nstderr: %s",
				s.name, r.code, s.wantCode, offline[i].stdout, r.stdout, r.stderr)
		}
	}
}

// Through a remote node (--node URL): reads need no credential; writes are
// signed with --sign-key; commands that would read a path on this machine
// as if it were on the node refuse with a usage error saying so.
func TestRemoteNodeCommands(t *testing.T) {
	dir := initDir(t)
	base := startDaemon(t, dir)
	elsewhere := t.TempDir()
	ws := sampleWorkspace(t)
	for _, args := range [][]string{
		{"ingest", ws},
		{"config", "genesis", ws},
		{"closure", "import", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"},
		{"closure", "import", "--from", "file:///tmp/cache", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"},
		{"closure", "attest", "--workspace", ws, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
	} {
		r := run(t, elsewhere, nil, append([]string{"--node", base}, args...)...)
		if r.code != 2 || !bytes.Contains(r.stderr, []byte("--node")) {
			t.Errorf("%v with --node: exit %d, stderr %q (want a usage error naming --node)", args, r.code, r.stderr)
		}
	}
	want := ok(t, dir, nil, "--json", "log", "checkpoint")
	if got := ok(t, elsewhere, nil, "--node", base, "--json", "log", "checkpoint"); !bytes.Equal(got, want) {
		t.Errorf("log checkpoint through --node: %s, want %s", got, want)
	}
	ok(t, elsewhere, nil, "--node", base, "--json", "attestation", "ls")
}

// TestClosureCommandsThroughDaemon (real Nix): closure ls, verify, diff and
// export print the same while the daemon holds the data dir as without it;
// import and attest go through it, with no progress bar on a pipe; a
// remote operator imports a closure CAR and attests with signed requests.
func TestClosureCommandsThroughDaemon(t *testing.T) {
	n := nixtest.Require(t)
	ga, gb := cliClosures(n)
	dir := initDir(t)
	impA := jsonOK[closureImport](t, dir, nil, "closure", "import", ga["top"])
	impB := jsonOK[closureImport](t, dir, nil, "closure", "import", gb["top"])
	carFile := filepath.Join(t.TempDir(), "a.car")
	ok(t, dir, nil, "closure", "export", "-o", carFile, impA.Closure)
	reads := [][]string{
		{"--json", "closure", "ls"},
		{"closure", "ls"},
		{"--json", "closure", "ls", impA.Closure},
		{"--json", "closure", "verify", impA.Closure},
		{"--json", "closure", "diff", impA.Closure, impB.Closure},
		{"closure", "diff", impA.Closure, impB.Closure},
		{"closure", "export", impB.Closure},
	}
	offline := make([][]byte, len(reads))
	for i, args := range reads {
		offline[i] = ok(t, dir, nil, args...)
	}
	// An operator key the node trusts for signed requests.
	op := filepath.Join(t.TempDir(), "operator.key")
	ok(t, dir, nil, "key", "generate", "--output", op)
	pub, _ := os.ReadFile(op + ".pub")
	polFile := filepath.Join(dir, "trust-policy.json")
	var pol map[string]any
	raw, _ := os.ReadFile(polFile)
	json.Unmarshal(raw, &pol)
	pol["approvers"] = map[string]any{"threshold": 1, "keys": []any{map[string]any{"name": "op", "publicKey": string(pub)}}}
	raw, _ = json.Marshal(pol)
	os.WriteFile(polFile, raw, 0o644)

	base := startDaemon(t, dir)
	for i, args := range reads {
		if got := ok(t, dir, nil, args...); !bytes.Equal(got, offline[i]) {
			t.Errorf("%v through the daemon differs:\nwithout: %.300s\nthrough: %.300s", args, offline[i], got)
		}
	}
	r := run(t, dir, nil, "--json", "closure", "import", ga["top"])
	var again closureImport
	if r.code != 0 || json.Unmarshal(r.stdout, &again) != nil || again.Closure != impA.Closure {
		t.Fatalf("closure import through the daemon: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	if len(r.stderr) != 0 {
		t.Errorf("closure import through the daemon, piped: stderr %q, want nothing (no progress bar)", r.stderr)
	}
	r = run(t, dir, nil, "closure", "import", gb["top"])
	if r.code != 0 || len(r.stderr) != 0 || !bytes.Contains(r.stdout, []byte(impB.Closure)) {
		t.Errorf("human closure import through the daemon, piped: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	att := jsonOK[struct {
		ID       string `json:"id"`
		Unproven string `json:"unproven"`
	}](t, dir, nil, "closure", "attest", impA.Closure)
	if att.ID == "" || att.Unproven == "" {
		t.Fatalf("closure attest through the daemon: %+v", att)
	}
	if r := run(t, dir, nil, "closure", "attest", "--key", op, impA.Closure); r.code != 2 || !bytes.Contains(r.stderr, []byte("own attestation key")) {
		t.Errorf("closure attest --key through the daemon: exit %d, %s", r.code, r.stderr)
	}

	// A remote operator: signed writes work, unsigned ones get 401.
	elsewhere := t.TempDir()
	var car closureImport
	if err := json.Unmarshal(ok(t, elsewhere, nil, "--node", base, "--sign-key", op, "--json", "closure", "import", "--car", carFile), &car); err != nil || car.Closure != impA.Closure {
		t.Fatalf("remote closure import --car: %+v %v", car, err)
	}
	ok(t, elsewhere, nil, "--node", base, "--sign-key", op, "closure", "attest", "--generation", "7", impA.Closure)
	if r := run(t, elsewhere, nil, "--node", base, "closure", "attest", impA.Closure); r.code != 1 || !bytes.Contains(r.stderr, []byte("401")) {
		t.Errorf("unsigned remote closure attest: exit %d, %s", r.code, r.stderr)
	}
	if got := ok(t, elsewhere, nil, "--node", base, "--json", "closure", "verify", impA.Closure); !bytes.Equal(got, offline[3]) {
		t.Errorf("remote closure verify: %s, want %s", got, offline[3])
	}
}
