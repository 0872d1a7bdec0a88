package verify

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/bindnode"
	"github.com/ipld/go-ipld-prime/schema"
	mh "github.com/multiformats/go-multihash"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
)

// sampleBytes is the sample audit log with lines (1-based) changed by f.
func sampleBytes(t testing.TB, f func([]string) []string) []byte {
	t.Helper()
	return []byte(joinLines(f(sampleLines(t))))
}

// closureTypes loads the records schema, to write closure records a
// misbehaving node could store.
func closureTypes(t testing.TB) *schema.TypeSystem {
	t.Helper()
	ts, err := schemas.TypeSystem()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func (tn *testNode) putRecord(t testing.TB, v any, typ schema.Type) blocks.Block {
	t.Helper()
	var buf bytes.Buffer
	if err := dagcbor.Encode(bindnode.Wrap(v, typ).Representation(), &buf); err != nil {
		t.Fatal(err)
	}
	c, err := cid.V1Builder{Codec: cid.DagCBOR, MhType: mh.SHA2_256, MhLength: -1}.Sum(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := blocks.NewBlockWithCid(buf.Bytes(), c)
	if err := tn.n.Store.Blockstore().Put(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	return blk
}

// forgeClosure stores a copy of closure c whose StorePathInfo records were
// changed by f, and publishes a node-signed running-config naming it (what
// closure.RunningConfig, which verifies first, would refuse to sign).
func (tn *testNode) forgeClosure(t testing.TB, c cid.Cid, applies []string, f func(*closure.StorePathInfo)) {
	t.Helper()
	ctx := context.Background()
	ts := closureTypes(t)
	cl, err := closure.LoadClosure(ctx, tn.n.Store, c)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range cl.Paths {
		spi, err := closure.LoadStorePathInfo(ctx, tn.n.Store, e.Info.(cidlink.Link).Cid)
		if err != nil {
			t.Fatal(err)
		}
		f(spi)
		cl.Paths[i].Info = cidlink.Link{Cid: tn.putRecord(t, spi, ts.TypeByName("StorePathInfo")).Cid()}
	}
	blk := tn.putRecord(t, cl, ts.TypeByName("Closure"))
	tn.publishPredicate(t, attest.PredicateRunningConfig,
		[]attest.ResourceDescriptor{attest.Subject(blk.Cid(), sha256sum(blk.RawData()), cl.Root)},
		attest.RunningConfigPredicate{Closure: attest.ClosureRef{CID: blk.Cid().String(), RootStorePath: cl.Root,
			NarHash: "sha256:19rqsvp4ld2m4zzgv6d2qc84hq6kvbqq2i37l9450lrb01py3pxz"}, Applies: applies})
}

// flipStored flips one byte of the stored bytes of block c behind the
// store's back.
func (tn *testNode) flipStored(t testing.TB, c cid.Cid) {
	t.Helper()
	k := append(append([]byte{}, kv.PrefixBlocks...), c.Hash()...)
	err := tn.n.DB.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)/2] ^= 0x20
		return txn.Set(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// noVerifyOnRead makes the node serve whatever bytes it has stored, as a
// broken or lying node would.
func noVerifyOnRead(n *node.Node) {
	n.Store = store.New(n.DB, store.Options{NoVerifyOnRead: true, PackThreshold: -1})
}

func TestCheckNodeTamper(t *testing.T) {
	orig := func(t testing.TB) []byte { return sampleBytes(t, func(l []string) []string { return l }) }
	tests := []struct {
		name   string
		lines  []string // audit lines the node ingests (nil: the sample's)
		hook   func(*node.Node)
		tamper func(t *testing.T, tn *testNode, c cid.Cid)
		check  string
		reason string
		line   int64 // audit line the finding must name (0: none)
	}{
		{
			name: "edited audit line in a fresh snapshot",
			tamper: func(t *testing.T, tn *testNode, _ cid.Cid) {
				tn.fakeSnapshot(t, sampleBytes(t, func(l []string) []string {
					l[4] = strings.Replace(l[4], "sudo cat", "echo cat", 1)
					return l
				}), 0, nil)
			},
			check: "audit-log", reason: "audit-line-edited", line: 5,
		},
		{
			name: "truncated audit log",
			tamper: func(t *testing.T, tn *testNode, _ cid.Cid) {
				tn.fakeSnapshot(t, sampleBytes(t, func(l []string) []string { return l[:5] }), 0, nil)
			},
			check: "audit-log", reason: "audit-log-truncated", line: 6,
		},
		{
			name: "reordered audit lines",
			tamper: func(t *testing.T, tn *testNode, _ cid.Cid) {
				tn.fakeSnapshot(t, sampleBytes(t, func(l []string) []string {
					l[4], l[5] = l[5], l[4]
					return append(l, applyLine(fooPatch))
				}), 0, nil)
			},
			check: "audit-log", reason: "audit-lines-reordered", line: 5,
		},
		{
			name: "stored bytes do not give the attested root",
			tamper: func(t *testing.T, tn *testNode, _ cid.Cid) {
				b := orig(t)
				root := rootOf(b)
				tn.fakeSnapshot(t, bytes.Replace(b, []byte(`"status"`), []byte(`"statuz"`), 1), 7, root)
			},
			check: "audit-log", reason: "audit-root-mismatch",
		},
		{
			// The node's own gateway refuses a block that does not hash
			// to its CID, so a lying node is played by a proxy that flips
			// a byte of the audit log block in what it serves.
			name: "flipped byte in the served audit log block",
			tamper: func(t *testing.T, tn *testNode, _ cid.Cid) {
				tn.srv = flipProxy(t, tn.srv.URL, orig(t))
			},
			check: "audit-log", reason: "block-hash-mismatch",
		},
		{
			name: "NAR hash mismatch",
			tamper: func(t *testing.T, tn *testNode, c cid.Cid) {
				tn.forgeClosure(t, c, tn.applyIDs(t), func(spi *closure.StorePathInfo) {
					spi.NarHash = "sha256:" + strings.Repeat("0", 52)
				})
			},
			check: "closure", reason: "nar-hash-mismatch",
		},
		{
			name: "closure missing a reference",
			tamper: func(t *testing.T, tn *testNode, c cid.Cid) {
				tn.forgeClosure(t, c, tn.applyIDs(t), func(spi *closure.StorePathInfo) {
					spi.References = append(spi.References, "/nix/store/"+strings.Repeat("a", 32)+"-glibc")
				})
			},
			check: "closure", reason: "closure-incomplete",
		},
		{
			name:  "apply that bypassed the controller",
			lines: append(sampleLines(t), applyLine(".agentix/proposals/20261125-165835-create-module-foo.patch")),
			check: "boundary", reason: "controller-bypass", line: 8,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn, c := nodeWith(t, tc.lines, tc.hook)
			if tc.tamper != nil {
				tc.tamper(t, tn, c)
			}
			r := checkNode(t, tn)
			if r.OK || r.Err() == nil {
				t.Fatalf("tampered node proven:\n%s", dump(t, r))
			}
			var found *Finding
			for i, f := range r.Failures {
				if f.Check == tc.check && f.Reason == tc.reason {
					found = &r.Failures[i]
				}
			}
			if found == nil {
				t.Fatalf("no %s/%s failure:\n%s", tc.check, tc.reason, dump(t, r))
			}
			if found.Line != tc.line {
				t.Errorf("failure names line %d, want %d: %s", found.Line, tc.line, found.Message)
			}
			if _, ok := r.Err().(*FailedError); !ok {
				t.Errorf("Err() = %T, want *FailedError", r.Err())
			}
		})
	}
}

func rootOf(b []byte) []byte {
	ls, _ := splitLines(b)
	tr := audit.NewTree()
	for _, l := range ls {
		tr.Append(l)
	}
	return tr.Root()
}

// A node that re-hashes what it reads (the default) refuses to serve a
// corrupted block: the auditor cannot check the snapshot and says so
// (uncertain, never proven).
func TestCheckNodeCorruptBlockRefused(t *testing.T) {
	tn, _ := healthyNode(t)
	b := sampleBytes(t, func(l []string) []string { return l })
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(b)
	if err != nil {
		t.Fatal(err)
	}
	tn.flipStored(t, c)
	r := checkNode(t, tn)
	if r.OK || !slices.ContainsFunc(r.Uncertain, func(f Finding) bool { return f.Check == "audit-log" }) {
		t.Fatalf("want an uncertain audit-log check:\n%s", dump(t, r))
	}
	if _, ok := r.Err().(*UncertainError); !ok && len(r.Failures) == 0 {
		t.Fatalf("Err() = %T", r.Err())
	}
}

// flipProxy serves what origin serves, with one bit flipped in the middle
// of every occurrence of b in a response body.
func flipProxy(t testing.TB, origin string, b []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, origin+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for off := 0; ; {
			i := bytes.Index(body[off:], b)
			if i < 0 {
				break
			}
			body[off+i+len(b)/2] ^= 0x20
			off += i + len(b)
		}
		for k, v := range resp.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}
