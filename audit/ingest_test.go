package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
)

type testNode struct {
	db  *badger.DB
	st  *store.Store
	ing *Ingester
	pub *attest.Publisher
	key *attest.Signer
}

// newNode opens a real badger database and store in a temp dir; with
// attested, also a transparency log, publisher and node key.
func newNode(t testing.TB, attested bool) *testNode {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{db: db, st: store.New(db, store.Options{})}
	n.ing = NewIngester(n.st, db)
	var l *tlog.Log
	if attested {
		skey, _, err := note.GenerateKey(rand.Reader, "test.agentix.dev/audit")
		if err != nil {
			t.Fatal(err)
		}
		ns, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		if l, err = tlog.Open(db, tlog.Options{Signer: ns}); err != nil {
			t.Fatal(err)
		}
		n.pub = &attest.Publisher{Blocks: n.st.Blockstore(), Log: l, Index: attest.NewIndex(db)}
		n.key = newSigner(t)
		n.ing.Attester = PublisherAttester{Publisher: n.pub, Signer: n.key}
	}
	t.Cleanup(func() {
		if l != nil {
			l.Close()
		}
		db.Close()
	})
	return n
}

func newSigner(t testing.TB) *attest.Signer {
	t.Helper()
	priv, _, err := attest.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.ParsePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func catAll(t testing.TB, st *store.Store, r *IngestResult) []byte {
	t.Helper()
	f, err := st.Cat(context.Background(), r.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readLog(t testing.TB, ws string) []byte {
	b, err := os.ReadFile(filepath.Join(ws, ".agentix", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIngestIncremental(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, false)
	lines := sampleLines(t)
	ws := newWorkspace(t, lines[:4])

	r1, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Unchanged || r1.Lines != 4 || r1.Previous != nil || !bytes.Equal(catAll(t, n.st, r1), readLog(t, ws)) {
		t.Fatalf("first ingest: %+v", r1)
	}
	// The first snapshot's bytes are exactly what `ipfs add` gives.
	want, err := n.st.Add(ctx, bytes.NewReader(readLog(t, ws)), store.AddOptions{})
	if err != nil || want != r1.Bytes {
		t.Fatalf("bytes CID %s, plain add %s (%v)", r1.Bytes, want, err)
	}

	r2, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
	if err != nil || !r2.Unchanged || r2.Snapshot != r1.Snapshot {
		t.Fatalf("re-ingest of an unchanged file: %+v, %v", r2, err)
	}

	appendLog(t, ws, lines[4:]...)
	// A line being written is not ingested.
	f, _ := os.OpenFile(filepath.Join(ws, ".agentix", "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"action": "sta`)
	f.Close()
	r3, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	if r3.Lines != 7 || r3.NewLines != 3 || r3.Previous == nil || *r3.Previous != r1.Snapshot || r3.Pending != 15 {
		t.Fatalf("incremental ingest: %+v", r3)
	}
	full := readLog(t, ws)
	if got := catAll(t, n.st, r3); !bytes.Equal(got, full[:len(full)-15]) {
		t.Fatalf("snapshot bytes differ from the file's complete lines")
	}
	var prf [][]byte
	for _, h := range r3.Proof {
		b, _ := hex.DecodeString(h)
		prf = append(prf, b)
	}
	root1, _ := hex.DecodeString(r1.Root)
	root3, _ := hex.DecodeString(r3.Root)
	if err := VerifyConsistency(4, 7, prf, root1, root3); err != nil {
		t.Fatalf("consistency proof: %v", err)
	}
	// Same root as the stateless check of the whole file.
	rep, err := CheckWorkspace(ws, nil, Inputs{})
	if err != nil || rep.Root != r3.Root || !rep.Result.Passed || !r3.Boundary.Passed {
		t.Fatalf("root %s vs %s, check %+v, ingest %+v (%v)", rep.Root, r3.Root, rep.Result, r3.Boundary, err)
	}
	// The snapshot record decodes and links the previous one.
	blk, err := n.st.Blockstore().Get(ctx, r3.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	var snap schemas.AuditLogSnapshot
	if err := schemas.DecodeBlock(blk, &snap); err != nil || snap.Lines != 7 || snap.Previous == nil || *snap.Previous != r1.Snapshot || snap.Bytes != r3.Bytes {
		t.Fatalf("snapshot record %+v, %v", snap, err)
	}
	// Many small increments keep the bytes exact.
	for i := range 200 {
		appendLog(t, ws, strings.Replace(lines[5], "16:58:38", "17:"+two(i/60)+":"+two(i%60), 1))
		if i%3 == 0 {
			continue
		}
		r, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "ws"})
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 1 {
			if got, want := catAll(t, n.st, r), readLog(t, ws); !bytes.Equal(got, want) || r.Size != int64(len(want)) {
				t.Fatalf("after %d increments: bytes differ (%d vs %d)", i, len(got), len(want))
			}
		}
	}
	// GC keeps everything reachable from audit's roots.
	if _, err := n.st.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(catAll(t, n.st, r3), full[:len(full)-15]) {
		t.Fatal("GC collected audit log blocks")
	}
}

func two(i int) string { return string([]byte{byte('0' + i/10), byte('0' + i%10)}) }

func TestIngestTamper(t *testing.T) {
	ctx := context.Background()
	lines := sampleLines(t)
	edit := func(i int, from, to string) []string {
		l := clone(lines)
		l[i] = strings.Replace(l[i], from, to, 1)
		return l
	}
	tests := []struct {
		name   string
		after  []string
		verify bool
		kind   string
		line   int64
	}{
		{"truncated", lines[:5], false, TamperTruncated, 6},
		{"truncated mid-line", append(clone(lines[:6]), lines[6][:40]), false, TamperTruncated, 7},
		{"earlier line edited (longer)", edit(1, `"source_modified": false`, `"source_modified": true`), false, TamperEdited, 2},
		{"earlier line edited (same length)", edit(1, `"passed": true`, `"passed": fals`), true, TamperEdited, 2},
		{"line removed", append(clone(lines[:2]), lines[3:]...), false, TamperRemoved, 3},
		{"lines reordered", append(append(clone(lines[:3]), lines[4], lines[3]), lines[5:]...), true, TamperReordered, 4},
		{"last line edited", edit(6, "passed", "failed"), false, TamperEdited, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, false)
			ws := newWorkspace(t, lines)
			r1, err := n.ing.Ingest(ctx, ws, IngestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			writeLog(t, ws, tc.after)
			if strings.Contains(tc.name, "mid-line") {
				b := readLog(t, ws)
				os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), b[:len(b)-1], 0o644)
			}
			r2, err := n.ing.Ingest(ctx, ws, IngestOptions{VerifyPrefix: tc.verify})
			var te *TamperError
			if !errors.Is(err, ErrNotAppendOnly) || !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TamperError", err)
			}
			if te.Evidence.Kind != tc.kind || te.Evidence.Line != tc.line || te.Evidence.Accepted != r1.Snapshot {
				t.Fatalf("evidence %+v, want %s at line %d", te.Evidence, tc.kind, tc.line)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error %q does not name the line", err)
			}
			checkHas(t, r2.Boundary, RuleAppendOnly, tc.line, ErrNotAppendOnly)
			// Both versions are kept.
			if got := catAll(t, n.st, r1); !bytes.Equal(got, []byte(strings.Join(lines, ""))) {
				t.Fatal("accepted version lost")
			}
			if got := catAll(t, n.st, r2); !bytes.HasPrefix(readLog(t, ws), got) || len(got) == 0 && tc.line > 1 {
				t.Fatal("refused version not stored")
			}
			ev, err := n.ing.Evidence(r1.Workspace)
			if err != nil || len(ev) != 1 || ev[0].Found != r2.Snapshot {
				t.Fatalf("evidence records %+v, %v", ev, err)
			}
			// The accepted snapshot stays the head: restoring the file
			// makes ingest a no-op again.
			writeLog(t, ws, lines)
			r3, err := n.ing.Ingest(ctx, ws, IngestOptions{VerifyPrefix: true})
			if err != nil || !r3.Unchanged || r3.Snapshot != r1.Snapshot {
				t.Fatalf("after restoring: %+v %v", r3, err)
			}
		})
	}
	t.Run("same-length edit passes the cheap check", func(t *testing.T) {
		n := newNode(t, false)
		ws := newWorkspace(t, lines)
		if _, err := n.ing.Ingest(ctx, ws, IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		writeLog(t, ws, edit(1, `"passed": true`, `"passed": fals`))
		if r, err := n.ing.Ingest(ctx, ws, IngestOptions{}); err != nil || !r.Unchanged {
			t.Fatalf("cheap check: %+v %v (documented limit: only VerifyPrefix sees this)", r, err)
		}
	})
}

func TestIngestPatchChangedAfterProposal(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, false)
	lines := sampleLines(t)
	ws := newWorkspace(t, lines[:2])
	if _, err := n.ing.Ingest(ctx, ws, IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	writePatch(t, ws, fooPatch, []byte("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+sneaky\n"))
	appendLog(t, ws, lines[2:]...)
	r, err := n.ing.Ingest(ctx, ws, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOnly(t, r.Boundary, RuleProposal, 3, ErrPatchChanged)
	if r.Boundary.Violations[0].Patch != fooPatch {
		t.Fatalf("violation names patch %q", r.Boundary.Violations[0].Patch)
	}
	// The local check, which only sees today's bytes, cannot tell.
	rep, _ := CheckWorkspace(ws, nil, Inputs{})
	if !rep.Result.Passed {
		t.Fatalf("local check: %v", rep.Result.Err())
	}
}

func TestIngestAttestations(t *testing.T) {
	ctx := context.Background()
	approvers := []*attest.Signer{newSigner(t), newSigner(t), newSigner(t)}
	pol, err := ParsePolicy([]byte(`{"approvers": {"threshold": 2, "keys": ["` +
		approvers[0].KeyID() + `", "` + approvers[1].KeyID() + `", "` + approvers[2].KeyID() + `"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	ks := attest.NewKeySet(approvers[0].Verifier(), approvers[1].Verifier(), approvers[2].Verifier())
	for _, tc := range []struct {
		name    string
		policy  *Policy
		signers []*attest.Signer
		passed  bool
		preds   map[string]int
	}{
		{"single operator", nil, nil, true, map[string]int{attest.PredicateAuditLog: 1, attest.PredicateProposal: 2, attest.PredicateApply: 1}},
		{"2-of-3 without approvals", pol, nil, false, map[string]int{attest.PredicateAuditLog: 1, attest.PredicateProposal: 2}},
		{"2-of-3 with one approval", pol, approvers[:1], false, map[string]int{attest.PredicateAuditLog: 1, attest.PredicateProposal: 2}},
		{"2-of-3 with two approvals", pol, approvers[1:], true, map[string]int{attest.PredicateAuditLog: 1, attest.PredicateProposal: 2, attest.PredicateApply: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, true)
			ws := newWorkspace(t, nil)
			n.ing.Policy = tc.policy
			var envs [][]byte
			if len(tc.signers) > 0 {
				pi := FileLookupMust(t, ws, fooPatch)
				_, payload, err := attest.NewStatement(attest.PredicateApproval,
					[]attest.ResourceDescriptor{attest.Subject(r0(t), make([]byte, 32), "")},
					attest.ApprovalPredicate{Patch: attest.PatchRef{CID: r0(t).String(), SHA256: pi}})
				if err != nil {
					t.Fatal(err)
				}
				env, err := attest.SignEnvelope(ctx, attest.PayloadType, payload, tc.signers...)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := attest.MarshalEnvelope(env)
				envs = append(envs, b)
			}
			n.ing.Approvals = func(context.Context) ([]Approval, error) {
				a, errs := VerifyApprovals(envs, ks)
				return a, errors.Join(errs...)
			}
			r, err := n.ing.Ingest(ctx, ws, IngestOptions{Workspace: "/home/operator/nixos-config"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Boundary.Passed != tc.passed {
				t.Fatalf("passed = %v, want %v: %v", r.Boundary.Passed, tc.passed, r.Boundary.Err())
			}
			if !tc.passed {
				checkOnly(t, r.Boundary, RuleApproval, 3, ErrNoApproval)
			}
			got := map[string]int{}
			for _, id := range r.Attestations {
				blk, err := n.st.Blockstore().Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				res, err := attest.VerifyEnvelopeBytes(blk.RawData(), trustPolicy(t, n.key))
				if err != nil {
					t.Fatalf("attestation %s does not verify: %v", id, err)
				}
				got[res.Statement.PredicateType]++
				if res.Statement.PredicateType == attest.PredicateAuditLog {
					var p attest.AuditLogPredicate
					if err := res.Statement.DecodePredicate(&p); err != nil || p.Boundary.Passed != tc.passed || p.Snapshot.Size != 7 || p.Snapshot.CID != r.Snapshot.String() {
						t.Fatalf("audit-log predicate %+v, %v", p, err)
					}
				}
			}
			for k, v := range tc.preds {
				if got[k] != v {
					t.Fatalf("attestations %v, want %v", got, tc.preds)
				}
			}
			if len(got) != len(tc.preds) {
				t.Fatalf("attestations %v, want %v", got, tc.preds)
			}
		})
	}
}

func r0(t testing.TB) cid.Cid {
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte("patch"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func trustPolicy(t testing.TB, node *attest.Signer) *attest.Policy {
	t.Helper()
	p := &attest.Policy{Version: attest.PolicyVersion, NodeKeys: []attest.KeyPolicy{attest.KeyPolicyFor("node", node.Verifier())}}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if p, err = attest.ParsePolicy(b); err != nil {
		t.Fatal(err)
	}
	return p
}
