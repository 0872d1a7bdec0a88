package attest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

type witness struct {
	signer note.Signer
	vkey   string
}

func newWitness(t testing.TB, name string) witness {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return witness{s, vkey}
}

// cosign appends w's cosignature/v1 line to a signed checkpoint note.
func cosign(t testing.TB, cp []byte, w witness) []byte {
	t.Helper()
	text, _, _ := bytes.Cut(cp, []byte("\n\n"))
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, w.signer)
	if err != nil {
		t.Fatal(err)
	}
	_, sigLine, _ := bytes.Cut(signed, []byte("\n\n"))
	return append(bytes.Clone(cp), sigLine...)
}

type bundleFixture struct {
	node           *testNode
	nodeKey        *Signer
	policy         *Policy
	w1, w2, wOther witness
	bundle         *Bundle
}

func newBundleFixture(t testing.TB, withCAR bool) *bundleFixture {
	ctx := context.Background()
	f := &bundleFixture{node: newTestNode(t), nodeKey: testKey(t, "")}
	f.w1, f.w2, f.wOther = newWitness(t, "witness-one"), newWitness(t, "witness-two"), newWitness(t, "witness-three")
	n := f.node

	// Store real subject bytes so the CAR can hold their DAG.
	patch := []byte("diff --git a/modules/foo.nix b/modules/foo.nix\n")
	id, sum := rawCID(t, patch)
	blk, _ := blocks.NewBlockWithCid(patch, id)
	if err := n.store.Blockstore().Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	rd := Subject(id, sum, "")
	// A few attestations so the proof is not trivial.
	var target Published
	for i := range 5 {
		snap, _ := rawCID(t, []byte{byte(i)})
		pub, err := n.pub.Attest(ctx, f.nodeKey, PredicateProposal, []ResourceDescriptor{rd}, ProposalPredicate{
			Workspace: "/w", Patch: PatchRef{CID: id.String(), SHA256: rd.SHA256()}, AuditLine: AuditLine{Snapshot: snap.String(), Line: int64(i)}, Action: "worktree_run",
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			target = pub
		}
	}
	bb := &BundleBuilder{Blocks: n.store.Blockstore(), Index: n.pub.Index, Log: n.log, DAGs: n.store}
	bu, err := bb.Build(ctx, target.ID, withCAR)
	if err != nil {
		t.Fatal(err)
	}
	f.bundle = bu

	pol := Policy{Version: PolicyVersion,
		Logs:      []LogPolicy{{Origin: n.log.Origin(), Key: n.logVKey}},
		NodeKeys:  []KeyPolicy{KeyPolicyFor("node", f.nodeKey.Verifier())},
		Witnesses: WitnessPolicy{Quorum: 2, Keys: []string{f.w1.vkey, f.w2.vkey, f.wOther.vkey}},
	}
	pb, _ := pol.Marshal()
	if f.policy, err = ParsePolicy(pb); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *bundleFixture) encode(t testing.TB, edit func(*Bundle)) []byte {
	t.Helper()
	bu := *f.bundle
	bu.InclusionProof = append([][]byte(nil), f.bundle.InclusionProof...)
	if edit != nil {
		edit(&bu)
	}
	b, err := bu.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBundleVerify(t *testing.T) {
	f := newBundleFixture(t, true)
	cp := []byte(f.bundle.Checkpoint)
	twoWitnesses := string(cosign(t, cosign(t, cp, f.w1), f.w2))
	oneWitnessTwice := string(cosign(t, cosign(t, cp, f.w1), f.w1))
	stranger := newWitness(t, "witness-stranger")
	otherLog := newTestNode(t)

	for _, tc := range []struct {
		name string
		edit func(*Bundle)
		want error
		msg  string
	}{
		{"valid, two witnesses", func(b *Bundle) { b.Checkpoint = twoWitnesses }, nil, ""},
		{"no witnesses", nil, ErrWitnessQuorum, "0 of 2"},
		{"one witness counted twice", func(b *Bundle) { b.Checkpoint = oneWitnessTwice }, ErrWitnessQuorum, "1 of 2"},
		{"untrusted witness", func(b *Bundle) { b.Checkpoint = string(cosign(t, cosign(t, cp, f.w1), stranger)) }, ErrWitnessQuorum, "1 of 2"},
		{"wrong index", func(b *Bundle) { b.Checkpoint = twoWitnesses; b.LogIndex++ }, ErrInclusionProof, "entry 3"},
		{"proof hash flipped", func(b *Bundle) {
			b.Checkpoint = twoWitnesses
			h := bytes.Clone(b.InclusionProof[0])
			h[0] ^= 1
			b.InclusionProof[0] = h
		}, ErrInclusionProof, ""},
		{"checkpoint of another log with the same origin", func(b *Bundle) {
			c, _ := otherLog.log.Checkpoint(context.Background())
			b.Checkpoint = string(c.Note)
		}, ErrCheckpoint, "test.agentix.dev/node"},
		{"checkpoint of an unknown log", func(b *Bundle) {
			b.Checkpoint = "example.org/other" + twoWitnesses[strings.Index(twoWitnesses, "\n"):]
		}, ErrCheckpoint, "not in the trust policy"},
		{"checkpoint text altered", func(b *Bundle) {
			b.Checkpoint = strings.Replace(twoWitnesses, "\n5\n", "\n6\n", 1)
		}, ErrCheckpoint, ""},
		{"id mismatch", func(b *Bundle) { b.Checkpoint = twoWitnesses; b.ID = ID([]byte("x")).String() }, ErrBadBundle, "not the CID"},
		{"envelope tampered", func(b *Bundle) {
			b.Checkpoint = twoWitnesses
			env, _ := ParseEnvelope(b.Envelope)
			env.Signatures[0].Sig = env.Signatures[0].Sig[:4] + "AAAA" + env.Signatures[0].Sig[8:]
			b.Envelope, _ = MarshalEnvelope(env)
			b.ID = ID(b.Envelope).String()
		}, ErrTamperedPayload, ""},
		{"car block corrupted", func(b *Bundle) {
			b.Checkpoint = twoWitnesses
			c := bytes.Clone(b.CAR)
			c[len(c)-1] ^= 1
			b.CAR = c
		}, ErrBadBundle, "car"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := VerifyBundle(f.encode(t, tc.edit), f.policy)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if res.LogIndex != 2 || res.Checkpoint.Size != 5 || len(res.Witnesses) != 2 || res.Blocks != 2 || len(res.SubjectsInCAR) != 1 {
					t.Fatalf("result %+v", res)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestParseBundleStrict(t *testing.T) {
	f := newBundleFixture(t, false)
	good := f.encode(t, nil)
	if _, err := ParseBundle(good); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["car"]; ok {
		t.Fatal("bundle without CAR has a car field")
	}
	for name, edit := range map[string]func(map[string]any){
		"unknown field":    func(m map[string]any) { m["extra"] = 1 },
		"media type":       func(m map[string]any) { m["mediaType"] = "application/json" },
		"bad id":           func(m map[string]any) { m["id"] = "not-a-cid" },
		"no envelope":      func(m map[string]any) { delete(m, "envelope") },
		"no checkpoint":    func(m map[string]any) { m["checkpoint"] = "" },
		"short proof":      func(m map[string]any) { m["inclusionProof"] = []string{"AAAA"} },
		"envelope not b64": func(m map[string]any) { m["envelope"] = "%%%" },
	} {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		edit(c)
		b, _ := json.Marshal(c)
		if _, err := ParseBundle(b); !errors.Is(err, ErrBadBundle) {
			t.Errorf("%s: err = %v, want ErrBadBundle", name, err)
		}
	}
}
