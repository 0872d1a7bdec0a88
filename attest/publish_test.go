package attest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
)

// testNode is a real node: badger on disk, block store and log.
type testNode struct {
	db      *badger.DB
	store   *store.Store
	log     *tlog.Log
	logVKey string
	pub     *Publisher
}

func newTestNode(t testing.TB) *testNode {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.agentix.dev/node")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(db, tlog.Options{Signer: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		db.Close()
	})
	st := store.New(db, store.Options{})
	return &testNode{db: db, store: st, log: l, logVKey: vkey,
		pub: &Publisher{Blocks: st.Blockstore(), Log: l, Index: NewIndex(db)}}
}

func TestPublishAndSearch(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	node, approver := testKey(t, ""), testKey(t, AlgECDSAP256)

	rd, ref := testPatch(t, "diff --git a/x b/x")
	snap, _ := rawCID(t, []byte("snap"))
	prop, err := n.pub.Attest(ctx, node, PredicateProposal, []ResourceDescriptor{rd}, ProposalPredicate{
		Workspace: "/w", Patch: ref, AuditLine: AuditLine{Snapshot: snap.String(), Line: 1}, Action: "worktree_run",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, payload, _ := NewStatement(PredicateApproval, []ResourceDescriptor{rd}, ApprovalPredicate{Patch: ref, Proposal: prop.ID.String()})
	appr, err := n.pub.PublishEnvelope(ctx, sign(t, PayloadType, payload, approver))
	if err != nil {
		t.Fatal(err)
	}
	if prop.LogIndex == appr.LogIndex {
		t.Fatalf("two attestations share log index %d", prop.LogIndex)
	}

	// The block is the exact envelope bytes; the log entry too.
	blk, err := n.store.Blockstore().Get(ctx, appr.ID)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := n.log.Entry(ctx, appr.LogIndex)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blk.RawData(), entry) || ID(entry) != appr.ID {
		t.Fatal("stored block, log entry and id disagree")
	}

	// Publishing the same bytes again is a no-op.
	again, err := n.pub.Publish(ctx, blk.RawData())
	if err != nil || !again.Existing || again.LogIndex != appr.LogIndex || n.log.Size() != 2 {
		t.Fatalf("republish: %+v, %v, log size %d", again, err, n.log.Size())
	}

	subjectCID, _ := rd.CID()
	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"by subject cid", Query{Subject: subjectCID.String()}, []uint64{prop.LogIndex, appr.LogIndex}},
		{"by sha256", Query{SHA256: rd.SHA256()}, []uint64{prop.LogIndex, appr.LogIndex}},
		{"by name", Query{Name: "proposals/test.patch"}, []uint64{prop.LogIndex, appr.LogIndex}},
		{"by predicate", Query{PredicateType: PredicateApproval}, []uint64{appr.LogIndex}},
		{"by signer", Query{Signer: node.KeyID()}, []uint64{prop.LogIndex}},
		{"subject and signer", Query{Subject: subjectCID.String(), Signer: approver.KeyID()}, []uint64{appr.LogIndex}},
		{"all", Query{}, []uint64{prop.LogIndex, appr.LogIndex}},
		{"limit", Query{Limit: 1}, []uint64{prop.LogIndex}},
		{"no match", Query{SHA256: "00"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := n.pub.Index.Search(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, r := range rs {
				got = append(got, r.LogIndex)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
	if _, err := n.pub.Index.Get(ID([]byte("nothing"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of unknown id: %v", err)
	}
}

func TestPublishRejects(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	node := testKey(t, "")
	good := sign(t, PayloadType, proposalStatement(t, "p"), node)
	noSig := *good
	noSig.Signatures = nil
	for _, tc := range []struct {
		name string
		env  *Envelope
		raw  []byte
		want error
	}{
		{"wrong payload type", sign(t, "text/plain", proposalStatement(t, "p"), node), nil, ErrWrongPayloadType},
		{"no signature", &noSig, nil, ErrNoSignature},
		{"not a statement", sign(t, PayloadType, []byte(`{"a":1}`), node), nil, ErrBadStatement},
		{"malformed", nil, []byte(`{"payloadType":`), ErrMalformedEnvelope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.raw
			if tc.env != nil {
				var err error
				if b, err = MarshalEnvelope(tc.env); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := n.pub.Publish(ctx, b); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if n.log.Size() != 0 {
		t.Fatalf("rejected attestations were logged: size %d", n.log.Size())
	}
}
