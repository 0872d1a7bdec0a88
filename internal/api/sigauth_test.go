package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/store"
)

func operatorKey(t *testing.T, alg string) *attest.Signer {
	t.Helper()
	p := filepath.Join(t.TempDir(), "op.key")
	priv, pub, err := attest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.WriteKeyFiles(p, p+".pub", priv, pub); err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignedRequests(t *testing.T) {
	n, tok := newNode(t)
	op := operatorKey(t, attest.AlgEd25519)
	op2 := operatorKey(t, attest.AlgECDSAP256)
	stranger := operatorKey(t, attest.AlgEd25519)
	h := Handler(n, tok, Limits{Operators: attest.NewKeySet(op.Verifier(), op2.Verifier())})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := context.Background()

	// A client signing with an operator key can write without the token.
	for _, s := range []*attest.Signer{op, op2} {
		c := &Client{Base: srv.URL, Signer: s}
		res, err := c.Add(ctx, bytes.NewReader([]byte("signed by an operator "+s.KeyID())), store.AddOptions{Pin: true})
		if err != nil {
			t.Fatalf("signed add with %s: %v", s.Algorithm(), err)
		}
		if _, err := c.LogAppend(ctx, []byte("entry by "+s.KeyID())); err != nil {
			t.Fatal(err)
		}
		_ = res
	}
	before, _ := n.Store.Stat(ctx)
	logBefore := n.Log.Size()

	body := []byte("a body")
	sum := sha256.Sum256(body)
	newReq := func(b []byte) *http.Request {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", bytes.NewReader(b))
		return req
	}
	do := func(req *http.Request) int {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"untrusted key", func() *http.Request {
			r := newReq(body)
			SignRequest(r, stranger, sum[:], time.Now())
			return r
		}, 401},
		{"stale timestamp", func() *http.Request {
			r := newReq(body)
			SignRequest(r, op, sum[:], time.Now().Add(-10*time.Minute))
			return r
		}, 401},
		{"body swapped after signing", func() *http.Request {
			r := newReq([]byte("another body"))
			SignRequest(r, op, sum[:], time.Now())
			return r
		}, 400},
		{"path changed after signing", func() *http.Request {
			r := newReq(body)
			SignRequest(r, op, sum[:], time.Now())
			r.URL.Path = "/api/v1/gc"
			return r
		}, 401},
		{"signature garbled", func() *http.Request {
			r := newReq(body)
			SignRequest(r, op, sum[:], time.Now())
			r.Header.Set("Authorization", r.Header.Get("Authorization")[:len(r.Header.Get("Authorization"))-6]+"AAAA==")
			return r
		}, 401},
		{"no digest header", func() *http.Request {
			r := newReq(body)
			SignRequest(r, op, sum[:], time.Now())
			r.Header.Del("X-Content-SHA256")
			return r
		}, 401},
	}
	for _, tc := range cases {
		if got := do(tc.req()); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	// A replayed signed request is refused.
	r1 := newReq(body)
	SignRequest(r1, op, sum[:], time.Now())
	r2 := newReq(body)
	r2.Header = r1.Header.Clone()
	if got := do(r1); got != 200 {
		t.Fatalf("signed append: %d", got)
	}
	if got := do(r2); got != 401 {
		t.Fatalf("replayed signed append: %d, want 401", got)
	}
	after, _ := n.Store.Stat(ctx)
	if after != before || n.Log.Size() != logBefore+1 {
		t.Fatalf("refused signed requests changed the node: %+v -> %+v, log %d -> %d", before, after, logBefore, n.Log.Size())
	}
	// A signed add whose body does not match: nothing pinned.
	c := &Client{Base: srv.URL, Signer: op}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/add", bytes.NewReader([]byte("tampered")))
	good := sha256.Sum256([]byte("original"))
	SignRequest(req, op, good[:], time.Now())
	if got := do(req); got != 400 {
		t.Fatalf("signed add with a swapped body: %d, want 400", got)
	}
	pins, _ := c.Pins(ctx)
	if len(pins) != 2 {
		t.Fatalf("%d pins after a refused add, want 2", len(pins))
	}
	if !errors.Is(ErrBodyDigest, ErrBodyDigest) {
		t.Fatal("unreachable")
	}
}
