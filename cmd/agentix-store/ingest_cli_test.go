package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
)

// These tests drive the real agentix-store and agentix-verify binaries over
// the real Agentix sample workspace (testdata/agentix/workspace-basic),
// laid out as <ws>/.agentix/audit.jsonl and <ws>/.agentix/proposals/.

const (
	sampleWS = "../../testdata/agentix/workspace-basic"
	fooRel   = ".agentix/proposals/20261125-165835-worktree-create-module-foo-with-template-packages.patch"
	barRel   = ".agentix/proposals/20261125-165837-worktree-create-module-bar-with-template-packages.patch"
	// never named by a proposal_saved of the sample
	unsavedRel = ".agentix/proposals/20261125-165835-create-module-foo.patch"
	origPrefix = "/home/operator/nixos-config/"

	predAuditLog = attest.PredicateAuditLog
	predApply    = attest.PredicateApply
)

// verifyBinary is the agentix-verify binary (built with agentix-store, see
// TestMain).
func verifyBinary(t *testing.T) string { return verifyBin }

// verify runs agentix-verify with args.
func verify(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(verifyBinary(t), args...)
	cmd.Env = append(os.Environ(), "AGENTIX_VERIFY_STATE="+t.TempDir())
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("agentix-verify %v: %v", args, err)
	}
	return result{so.Bytes(), se.Bytes(), code}
}

// sampleWorkspace copies the sample into a new workspace and returns its
// root.
func sampleWorkspace(t *testing.T) string {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "ws")
	pd := filepath.Join(ws, ".agentix", "proposals")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(sampleWS, "proposals"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(sampleWS, "proposals", e.Name()), filepath.Join(pd, e.Name()))
	}
	copyFile(t, filepath.Join(sampleWS, "audit.jsonl"), filepath.Join(ws, ".agentix", "audit.jsonl"))
	return ws
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func logPath(ws string) string { return filepath.Join(ws, ".agentix", "audit.jsonl") }

// appendLog appends s to the workspace's audit log, as Agentix does.
func appendLog(t *testing.T, ws, s string) {
	t.Helper()
	f, err := os.OpenFile(logPath(ws), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// logLines returns the audit log's lines, each with its newline.
func logLines(t *testing.T, ws string) []string {
	t.Helper()
	b, err := os.ReadFile(logPath(ws))
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(b), "\n")
	return ls[:len(ls)-1]
}

func writeLog(t *testing.T, ws string, lines []string) {
	t.Helper()
	if err := os.WriteFile(logPath(ws), []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Agentix lines (keys sorted, as Agentix writes them).
func applyLine(rel, ts string) string {
	return fmt.Sprintf(`{"action": "apply", "approval_required": true, "patch": "%s%s", "result": "applied", "timestamp": "%s"}`+"\n", origPrefix, rel, ts)
}

func runLine(rel string, sourceModified bool, ts string) string {
	return fmt.Sprintf(`{"action": "worktree_run", "error": null, "goal": "g", "mode": "worktree", "passed": true, "path": "/home/operator/nixos-config", "proposal_saved": "%s%s", "result": "ok", "source_modified": %v, "timestamp": "%s"}`+"\n",
		origPrefix, rel, sourceModified, ts)
}

func statusLine(ts string) string {
	return fmt.Sprintf(`{"action": "status", "path": "/home/operator/nixos-config", "result": "ok", "timestamp": "%s"}`+"\n", ts)
}

// ingestJSON is the part of `ingest --json` the tests read.
type ingestJSON struct {
	Unchanged    bool     `json:"unchanged"`
	Snapshot     string   `json:"snapshot"`
	Lines        int64    `json:"lines"`
	NewLines     int64    `json:"newLines"`
	Root         string   `json:"root"`
	Attestations []string `json:"attestations"`
	Boundary     struct {
		Passed         bool            `json:"passed"`
		SingleOperator bool            `json:"singleOperator"`
		Violations     []violationJSON `json:"violations"`
	} `json:"boundary"`
	Evidence *struct {
		Kind          string `json:"kind"`
		Line          int64  `json:"line"`
		Accepted      string `json:"accepted"`
		Found         string `json:"found"`
		AcceptedBytes string `json:"acceptedBytes"`
		FoundBytes    string `json:"foundBytes"`
	} `json:"evidence"`
}

type violationJSON struct {
	Rule     int    `json:"rule"`
	Line     int64  `json:"line"`
	Patch    string `json:"patch"`
	PatchCID string `json:"patchCid"`
	Message  string `json:"message"`
}

// ingest runs `agentix-store --json ingest [args] ws` and decodes its report.
func ingest(t *testing.T, dir, ws string, wantCode int, args ...string) (ingestJSON, result) {
	t.Helper()
	r := run(t, dir, nil, append(append([]string{"--json", "ingest"}, args...), ws)...)
	if r.code != wantCode {
		t.Fatalf("ingest %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, wantCode, r.stdout, r.stderr)
	}
	var res ingestJSON
	if err := json.Unmarshal(r.stdout, &res); err != nil {
		t.Fatalf("ingest --json: %v\n%s", err, r.stdout)
	}
	return res, r
}

// hasViolation reports whether vs has a violation of rule at line (and
// naming patch, when patch is not empty) whose message contains msg.
func hasViolation(vs []violationJSON, rule int, line int64, patch, msg string) bool {
	for _, v := range vs {
		if v.Rule == rule && v.Line == line && (patch == "" || v.Patch == patch) && strings.Contains(v.Message, msg) {
			return true
		}
	}
	return false
}

// checkJSON is the part of `agentix-verify --json audit-log` the tests read.
type checkJSON struct {
	Lines     int64 `json:"lines"`
	Snapshots []struct {
		ID         string   `json:"id"`
		Lines      int64    `json:"lines"`
		Consistent bool     `json:"consistent"`
		Proof      []string `json:"consistencyProof"`
	} `json:"snapshots"`
	Boundary struct {
		Passed     bool            `json:"passed"`
		Applies    int             `json:"applies"`
		Violations []violationJSON `json:"violations"`
	} `json:"boundary"`
}

func verifyJSON(t *testing.T, wantCode int, args ...string) checkJSON {
	t.Helper()
	r := verify(t, append([]string{"--json", "audit-log"}, args...)...)
	if r.code != wantCode {
		t.Fatalf("agentix-verify audit-log %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, wantCode, r.stdout, r.stderr)
	}
	var c checkJSON
	if err := json.Unmarshal(r.stdout, &c); err != nil {
		t.Fatalf("audit-log --json: %v\n%s", err, r.stdout)
	}
	return c
}

// searchIDs lists the ids of the node's attestations of a predicate type.
func searchIDs(t *testing.T, dir, predType string) []string {
	t.Helper()
	var recs []attest.Record
	if err := json.Unmarshal(ok(t, dir, nil, "--json", "attestation", "search", "--predicate-type", predType), &recs); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestIngestBasicWorkspaceCLI: the real sample passes under the default
// single-operator policy, in agentix-store ingest and agentix-verify
// audit-log (human and --json), and a second ingest is a no-op.
func TestIngestBasicWorkspaceCLI(t *testing.T) {
	dir := initDir(t)
	ws := sampleWorkspace(t)

	human := ok(t, dir, nil, "ingest", ws)
	for _, want := range []string{"7 new lines, 7 lines", "boundary HELD over 7 lines, 1 applies", "single-operator", "attestation "} {
		if !bytes.Contains(human, []byte(want)) {
			t.Errorf("ingest output lacks %q:\n%s", want, human)
		}
	}
	res, _ := ingest(t, dir, ws, 0)
	if !res.Unchanged || res.Lines != 7 || !res.Boundary.Passed || !res.Boundary.SingleOperator || len(res.Attestations) != 0 {
		t.Fatalf("second ingest: %+v", res)
	}
	// audit-log/v1, proposal/v1 ×2 and apply/v1 of the first ingest.
	if ids := searchIDs(t, dir, predAuditLog); len(ids) != 1 {
		t.Fatalf("audit-log attestations: %v", ids)
	}
	if ids := searchIDs(t, dir, predApply); len(ids) != 1 {
		t.Fatalf("apply attestations: %v", ids)
	}

	r := verify(t, "audit-log", ws)
	if r.code != 0 || !bytes.Contains(r.stdout, []byte("boundary HELD: 1 applies; single-operator")) || !bytes.Contains(r.stdout, []byte(res.Root)) {
		t.Fatalf("agentix-verify audit-log: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c := verifyJSON(t, 0, ws)
	if !c.Boundary.Passed || c.Lines != 7 || c.Boundary.Applies != 1 || len(c.Boundary.Violations) != 0 {
		t.Fatalf("agentix-verify --json: %+v", c)
	}
	if r := verify(t, "audit-log"); r.code != 2 {
		t.Fatalf("audit-log without WORKSPACE: exit %d", r.code)
	}
}

// approverSetup generates three approver keys with `key generate` and
// writes a trust policy (the node's own plus the approvers, threshold 2).
func approverSetup(t *testing.T, dir string) (keys []string, tp string) {
	t.Helper()
	tmp := t.TempDir()
	pol, err := attest.LoadPolicy(filepath.Join(dir, "trust-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	pol.Approvers = attest.ApproverPolicy{Threshold: 2}
	for _, name := range []string{"alice", "bob", "carol"} {
		k := filepath.Join(tmp, name+".key")
		ok(t, dir, nil, "key", "generate", "--output", k)
		s, err := attest.LoadSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		pol.Approvers.Keys = append(pol.Approvers.Keys, attest.KeyPolicyFor(name, s.Verifier()))
		keys = append(keys, k)
	}
	b, err := pol.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tp = filepath.Join(tmp, "trust-policy.json")
	if err := os.WriteFile(tp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return keys, tp
}

// TestIngestApproversCLI: with a trust policy naming three approvers,
// threshold 2, the sample's apply (line 3) breaks rule 2 until two distinct
// approvers have signed an approval of its patch and it is published; one
// approver signing twice counts once.
func TestIngestApproversCLI(t *testing.T) {
	dir := initDir(t)
	ws := sampleWorkspace(t)
	keys, tp := approverSetup(t, dir)
	tmp := t.TempDir()

	res, r := ingest(t, dir, ws, 1, "--policy", tp)
	if res.Boundary.SingleOperator || !hasViolation(res.Boundary.Violations, 2, 3, fooRel, "0 of 2") {
		t.Fatalf("rule 2 violation at line 3 missing: %+v", res.Boundary)
	}
	if want := "rule 2, audit line 3, patch " + fooRel; !bytes.Contains(r.stderr, []byte(want)) {
		t.Fatalf("stderr does not name %q: %s", want, r.stderr)
	}
	patchCID := res.Boundary.Violations[0].PatchCID
	if patchCID == "" {
		t.Fatal("rule 2 violation names no patch CID to approve")
	}
	c := verifyJSON(t, 1, ws, "--policy", tp)
	if !hasViolation(c.Boundary.Violations, 2, 3, fooRel, "") {
		t.Fatalf("agentix-verify: rule 2 violation missing: %+v", c.Boundary)
	}

	// alice signs, then signs the same envelope again, and signs a second
	// approval of the same patch: still one approver.
	a1, a1again, a2 := filepath.Join(tmp, "a1.json"), filepath.Join(tmp, "a1again.json"), filepath.Join(tmp, "a2.json")
	ok(t, dir, nil, "approve", patchCID, "--key", keys[0], "--output", a1)
	ok(t, dir, nil, "approve", patchCID, "--key", keys[0], "--in", a1, "--output", a1again)
	ok(t, dir, nil, "approve", patchCID, "--key", keys[0], "--comment", "again", "--output", a2)
	ok(t, dir, nil, "attest", a1again)
	ok(t, dir, nil, "attest", a2)
	res, _ = ingest(t, dir, ws, 1, "--policy", tp)
	if !hasViolation(res.Boundary.Violations, 2, 3, fooRel, "1 of 2") {
		t.Fatalf("after one approver signing twice: %+v", res.Boundary)
	}
	verifyJSON(t, 1, ws, "--policy", tp, "--approval", a1again, "--approval", a2)

	// bob adds his signature to alice's envelope; carol signs separately
	// and the two are merged: both are threshold approvals.
	ab, c1, merged := filepath.Join(tmp, "ab.json"), filepath.Join(tmp, "c.json"), filepath.Join(tmp, "merged.json")
	ok(t, dir, nil, "approve", patchCID, "--key", keys[1], "--in", a1, "--output", ab)
	ok(t, dir, nil, "approve", patchCID, "--key", keys[2], "--output", c1)
	ok(t, dir, nil, "approve", "merge", a1, c1, "--output", merged)
	for _, f := range []string{ab, merged} {
		c := verifyJSON(t, 0, ws, "--policy", tp, "--approval", f)
		if !c.Boundary.Passed {
			t.Fatalf("agentix-verify with %s: %+v", f, c.Boundary)
		}
	}
	ok(t, dir, nil, "attest", ab)
	res, _ = ingest(t, dir, ws, 0, "--policy", tp)
	if !res.Boundary.Passed || !res.Unchanged || len(res.Attestations) != 2 {
		t.Fatalf("after two approvers: %+v", res)
	}
	// The apply now has its apply/v1, naming the approval.
	if ids := searchIDs(t, dir, predApply); len(ids) != 1 {
		t.Fatalf("apply attestations after approval: %v", ids)
	}
	// Nothing new: no new attestation.
	if res, _ = ingest(t, dir, ws, 0, "--policy", tp); len(res.Attestations) != 0 {
		t.Fatalf("third ingest attested again: %+v", res.Attestations)
	}
}

// TestIngestDerivedViolationsCLI: derived workspaces each fail with the
// right rule and line, in agentix-store ingest and agentix-verify.
func TestIngestDerivedViolationsCLI(t *testing.T) {
	const ts = "2026-11-25T17:00:00.000000+00:00"
	for _, tc := range []struct {
		name string
		// before runs after a first ingest of the sample, then the log is
		// ingested again.
		before func(t *testing.T, ws string)
		rule   int
		line   int64
		patch  string
		msg    string
	}{
		{"apply of a patch no run saved", func(t *testing.T, ws string) {
			appendLog(t, ws, applyLine(unsavedRel, ts))
		}, 1, 8, unsavedRel, "never saved"},
		{"patch bytes changed after it was proposed", func(t *testing.T, ws string) {
			p := filepath.Join(ws, filepath.FromSlash(barRel))
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, append(b, "+rm -rf /\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			appendLog(t, ws, applyLine(barRel, ts))
		}, 1, 8, barRel, "differ from the proposal stored then"},
		{"run with source_modified true whose proposal is applied (the run)", func(t *testing.T, ws string) {
			appendLog(t, ws, runLine(unsavedRel, true, ts)+applyLine(unsavedRel, ts))
		}, 3, 8, "", "source_modified: true"},
		{"run with source_modified true whose proposal is applied (the apply)", func(t *testing.T, ws string) {
			appendLog(t, ws, runLine(unsavedRel, true, ts)+applyLine(unsavedRel, ts))
		}, 1, 9, unsavedRel, "modified the source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initDir(t)
			ws := sampleWorkspace(t)
			ingest(t, dir, ws, 0)
			tc.before(t, ws)
			res, r := ingest(t, dir, ws, 1)
			if !hasViolation(res.Boundary.Violations, tc.rule, tc.line, tc.patch, tc.msg) {
				t.Fatalf("ingest: no rule %d violation at line %d (%s): %+v", tc.rule, tc.line, tc.msg, res.Boundary.Violations)
			}
			if want := fmt.Sprintf("rule %d, audit line %d", tc.rule, tc.line); !bytes.Contains(r.stderr, []byte(want)) {
				t.Errorf("ingest stderr lacks %q: %s", want, r.stderr)
			}
			// The auditor sees the same from the workspace alone, except
			// for a patch changed after it was proposed: without the
			// store, the bytes present now are all it has.
			if tc.msg == "differ from the proposal stored then" {
				return
			}
			c := verifyJSON(t, 1, ws)
			if !hasViolation(c.Boundary.Violations, tc.rule, tc.line, tc.patch, tc.msg) {
				t.Fatalf("agentix-verify: no rule %d violation at line %d: %+v", tc.rule, tc.line, c.Boundary.Violations)
			}
		})
	}
}

// TestIngestTamperCLI: a truncated log, an edited earlier line and a
// removed line are refused on re-ingest (exit 1) with the exact line, and
// both versions stay readable from the store.
func TestIngestTamperCLI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(ls []string) []string
		kind   string
		line   int64
	}{
		{"truncated", func(ls []string) []string { return ls[:5] }, "truncated", 6},
		{"edited earlier line", func(ls []string) []string {
			ls[1] = strings.Replace(ls[1], `"execute": true`, `"execute": false`, 1)
			return ls
		}, "edited", 2},
		{"removed line", func(ls []string) []string { return append(ls[:3:3], ls[4:]...) }, "removed", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initDir(t)
			ws := sampleWorkspace(t)
			first, _ := ingest(t, dir, ws, 0)
			orig, _ := os.ReadFile(logPath(ws))
			writeLog(t, ws, tc.tamper(logLines(t, ws)))
			tampered, _ := os.ReadFile(logPath(ws))

			res, r := ingest(t, dir, ws, 1)
			ev := res.Evidence
			if ev == nil || ev.Kind != tc.kind || ev.Line != tc.line || ev.Accepted != first.Snapshot || ev.Found == first.Snapshot {
				t.Fatalf("evidence %+v, want %s at line %d (accepted %s)", ev, tc.kind, tc.line, first.Snapshot)
			}
			if !hasViolation(res.Boundary.Violations, 4, tc.line, "", tc.kind) {
				t.Fatalf("no rule 4 violation at line %d: %+v", tc.line, res.Boundary.Violations)
			}
			if want := fmt.Sprintf("line %d %s", tc.line, tc.kind); !bytes.Contains(r.stderr, []byte(want)) {
				t.Fatalf("stderr lacks %q: %s", want, r.stderr)
			}
			// Both versions are kept, byte for byte.
			if got := ok(t, dir, nil, "cat", ev.AcceptedBytes); !bytes.Equal(got, orig) {
				t.Fatalf("accepted version not kept:\n%s", got)
			}
			if got := ok(t, dir, nil, "cat", ev.FoundBytes); !bytes.Equal(got, tampered) {
				t.Fatalf("refused version not kept:\n%s", got)
			}
			// The accepted snapshot is still the head: the tampered file
			// is refused again; the original is unchanged.
			ingest(t, dir, ws, 1)
			if err := os.WriteFile(logPath(ws), orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if res, _ := ingest(t, dir, ws, 0); !res.Unchanged || res.Snapshot != first.Snapshot {
				t.Fatalf("original after refusal: %+v", res)
			}
		})
	}
}

// TestIngestWatchCLI: `ingest --watch --json` follows the log as Agentix
// writes it (in pieces, with a half-written line), prints one JSON object
// per new snapshot, attests each, and stops cleanly on SIGINT.
func TestIngestWatchCLI(t *testing.T) {
	dir := initDir(t)
	ws := sampleWorkspace(t)
	cmd := exec.Command(bin, "--dir", dir, "--json", "ingest", "--watch", "--interval", "100ms", ws)
	cmd.Env = append(os.Environ(), "AGENTIX_STORE_DIR=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	defer func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan ingestJSON, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r ingestJSON
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("watch printed a line that is not one JSON object: %v: %q", err, sc.Text())
				return
			}
			lines <- r
		}
	}()
	next := func(what string) ingestJSON {
		t.Helper()
		select {
		case r, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended before %s; stderr: %s", what, stderr.String())
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no snapshot for %s; stderr: %s", what, stderr.String())
		}
		return ingestJSON{}
	}
	var attested []string
	r := next("the first ingest")
	if r.Lines != 7 || r.NewLines != 7 || len(r.Attestations) == 0 {
		t.Fatalf("first snapshot: %+v", r)
	}
	attested = append(attested, r.Attestations[0])

	// A line written in two pieces: nothing is ingested while it is
	// half-written.
	l8 := statusLine("2026-11-25T17:00:01.000000+00:00")
	appendLog(t, ws, l8[:40])
	select {
	case r := <-lines:
		t.Fatalf("a half-written line was ingested: %+v", r)
	case <-time.After(400 * time.Millisecond):
	}
	appendLog(t, ws, l8[40:])
	if r = next("line 8"); r.Lines != 8 || r.NewLines != 1 || len(r.Attestations) == 0 {
		t.Fatalf("snapshot after line 8: %+v", r)
	}
	attested = append(attested, r.Attestations[0])
	appendLog(t, ws, statusLine("2026-11-25T17:00:02.000000+00:00")+statusLine("2026-11-25T17:00:03.000000+00:00"))
	if r = next("lines 9-10"); r.Lines != 10 || r.NewLines != 2 || !r.Boundary.Passed {
		t.Fatalf("snapshot after lines 9-10: %+v", r)
	}
	attested = append(attested, r.Attestations[0])

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		for range lines {
		}
		werr <- cmd.Wait()
	}()
	select {
	case err := <-werr:
		done = true
		if err != nil {
			t.Fatalf("watch did not stop cleanly on SIGINT: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop within 10s of SIGINT")
	}
	// Every snapshot printed was attested and logged.
	ids := searchIDs(t, dir, predAuditLog)
	if strings.Join(ids, " ") != strings.Join(attested, " ") {
		t.Fatalf("audit-log attestations %v, watch printed %v", ids, attested)
	}
}

// TestVerifyAuditLogSnapshotsCLI: rule 4 in agentix-verify — the workspace
// is checked against the node's earlier audit-log/v1 attestations, given as
// bundles: each must be consistent with the current file, and a bundle's
// CAR lets the verifier name the first differing line.
func TestVerifyAuditLogSnapshotsCLI(t *testing.T) {
	dir := initDir(t)
	ws := sampleWorkspace(t)
	tp := filepath.Join(dir, "trust-policy.json")
	tmp := t.TempDir()
	r1, _ := ingest(t, dir, ws, 0)
	appendLog(t, ws, statusLine("2026-11-25T17:00:01.000000+00:00")+statusLine("2026-11-25T17:00:02.000000+00:00"))
	r2, _ := ingest(t, dir, ws, 0)
	bundle := func(id, name string, car bool) string {
		args := []string{"bundle", id}
		if car {
			args = append(args, "--car")
		}
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, ok(t, dir, nil, args...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b1car := bundle(r1.Attestations[0], "b1car.json", true)
	b1 := bundle(r1.Attestations[0], "b1.json", false)
	b2 := bundle(r2.Attestations[0], "b2.json", false)

	appendLog(t, ws, statusLine("2026-11-25T17:00:03.000000+00:00"))
	c := verifyJSON(t, 0, ws, "--policy", tp, "--snapshot", b1car, "--snapshot", b2)
	if len(c.Snapshots) != 2 || !c.Snapshots[0].Consistent || !c.Snapshots[1].Consistent || c.Snapshots[0].Lines != 7 || c.Snapshots[1].Lines != 9 || len(c.Snapshots[0].Proof) == 0 {
		t.Fatalf("snapshots: %+v", c.Snapshots)
	}
	hr := verify(t, "audit-log", ws, "--policy", tp, "--attestation", b1)
	if hr.code != 0 || !bytes.Contains(hr.stdout, []byte("consistent (consistency proof verified)")) {
		t.Fatalf("human output: exit %d\n%s%s", hr.code, hr.stdout, hr.stderr)
	}

	orig := logLines(t, ws)
	for _, tc := range []struct {
		name   string
		lines  []string
		bundle string
		line   int64
		msg    string
	}{
		{"edited, CAR names the line", append(append([]string{}, orig[:1]...), append([]string{strings.Replace(orig[1], "true", "false", 1)}, orig[2:]...)...), b1car, 2, "line 2 edited"},
		{"edited, no CAR", append(append([]string{}, orig[:1]...), append([]string{strings.Replace(orig[1], "true", "false", 1)}, orig[2:]...)...), b1, 0, "no longer hash to the attested root"},
		{"truncated below the snapshot", orig[:8], b2, 9, "the file has 8 lines"},
		{"removed line, CAR", append(append([]string{}, orig[:3]...), orig[4:]...), b1car, 4, "line 4 removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w2 := sampleWorkspace(t)
			writeLog(t, w2, tc.lines)
			c := verifyJSON(t, 1, w2, "--policy", tp, "--snapshot", tc.bundle)
			if !hasViolation(c.Boundary.Violations, 4, tc.line, "", tc.msg) || c.Snapshots[0].Consistent {
				t.Fatalf("no rule 4 violation at line %d (%s): %+v %+v", tc.line, tc.msg, c.Boundary.Violations, c.Snapshots)
			}
		})
	}
	// A bundle that does not verify under the trust policy is refused.
	other := initDir(t)
	if r := verify(t, "audit-log", ws, "--policy", filepath.Join(other, "trust-policy.json"), "--snapshot", b1); r.code != 1 || !bytes.Contains(r.stderr, []byte(b1)) {
		t.Fatalf("bundle under a foreign trust policy: exit %d, %s", r.code, r.stderr)
	}
	if r := verify(t, "audit-log", ws, "--snapshot", b1); r.code != 2 {
		t.Fatalf("--snapshot without --trust-policy: exit %d", r.code)
	}
}

// TestRunningConfigRule5CLI: rule 5 — a running-config/v1 attestation made
// by `agentix-store closure attest` links to apply/v1 attestations; the node
// and the auditor check that the applies it names hold rules 1 and 2.
func TestRunningConfigRule5CLI(t *testing.T) {
	dir := initDir(t)
	ws := sampleWorkspace(t)
	tp := filepath.Join(dir, "trust-policy.json")
	tmp := t.TempDir()
	r1, _ := ingest(t, dir, ws, 0)
	applies := searchIDs(t, dir, predApply)
	if len(applies) != 1 {
		t.Fatalf("apply attestations: %v", applies)
	}
	var imp struct{ Closure string }
	cache, err := filepath.Abs("../../closure/testdata/cache")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ok(t, dir, nil, "--json", "closure", "import", "--from", "file://"+cache, "/nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib"), &imp); err != nil || imp.Closure == "" {
		t.Fatalf("closure import: %v %+v", err, imp)
	}
	var rc publishResult
	if err := json.Unmarshal(ok(t, dir, nil, "--json", "closure", "attest", "--apply", applies[0], imp.Closure), &rc); err != nil {
		t.Fatal(err)
	}
	// The node re-evaluates: rule 5 holds, and the verdict is unchanged so
	// nothing is attested again.
	if res, _ := ingest(t, dir, ws, 0); !res.Boundary.Passed || len(res.Attestations) != 0 {
		t.Fatalf("ingest with a good running config: %+v", res)
	}

	save := func(id, name string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, ok(t, dir, nil, "bundle", id), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rcB, applyB, logB := save(rc.ID, "rc.json"), save(applies[0], "apply.json"), save(r1.Attestations[0], "log.json")
	c := verifyJSON(t, 0, ws, "--policy", tp, "--attestation", rcB, "--attestation", applyB, "--attestation", logB)
	if !c.Boundary.Passed {
		t.Fatalf("auditor with a good running config: %+v", c.Boundary)
	}
	// The auditor without the apply attestation cannot link it.
	c = verifyJSON(t, 1, ws, "--policy", tp, "--attestation", rcB)
	if !hasViolation(c.Boundary.Violations, 5, 0, "", "unknown apply") {
		t.Fatalf("running config with an unlinked apply: %+v", c.Boundary.Violations)
	}
	// A workspace whose applied patch bytes differ from those the apply
	// attestation names breaks rule 5 for the running config naming it.
	w2 := sampleWorkspace(t)
	p := filepath.Join(w2, filepath.FromSlash(fooRel))
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, append(b, "+x\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	c = verifyJSON(t, 1, w2, "--policy", tp, "--attestation", rcB, "--attestation", applyB)
	if !hasViolation(c.Boundary.Violations, 5, 3, fooRel, "running config "+rc.ID) {
		t.Fatalf("running config over a changed patch: %+v", c.Boundary.Violations)
	}

	// On the node: a running config naming something that is no apply of
	// any ingested workspace breaks rule 5.
	ok(t, dir, nil, "closure", "attest", "--apply", r1.Attestations[0], imp.Closure)
	res, r := ingest(t, dir, ws, 1)
	if !hasViolation(res.Boundary.Violations, 5, 0, "", "names apply "+r1.Attestations[0]) || len(res.Attestations) != 1 {
		t.Fatalf("ingest with a bad running config: %+v", res)
	}
	if !bytes.Contains(r.stderr, []byte("rule 5")) {
		t.Fatalf("stderr: %s", r.stderr)
	}
}
