package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
)

func newNode(t testing.TB) (*node.Node, string) {
	t.Helper()
	dir := t.TempDir()
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "api-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := node.ReadKey(dir, node.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return n, tok
}

// The Client against the real Handler behaves like the in-process Local
// backend on the same operations.
func TestClientMatchesLocal(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{MaxAdd: 8 << 20, MaxCAR: 8 << 20}))
	defer srv.Close()
	ctx := context.Background()
	data := bytes.Repeat([]byte("agentix "), 100000)
	var first string
	for _, b := range []Backend{Local{N: n}, &Client{Base: srv.URL, Token: tok}} {
		res, err := b.Add(ctx, bytes.NewReader(data), store.AddOptions{Pin: true})
		if err != nil {
			t.Fatalf("%T add: %v", b, err)
		}
		if first == "" {
			first = res.CID
		}
		if res.CID != first || res.Size != int64(len(data)) {
			t.Fatalf("%T add: %+v, want CID %s and size %d", b, res, first, len(data))
		}
		c, _ := store.ParseCID(res.CID)
		rc, err := b.CatRange(ctx, c, 10, 100)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data[10:110]) {
			t.Fatalf("%T cat range: %q", b, got)
		}
		var car bytes.Buffer
		if err := b.ExportCAR(ctx, &car, c, store.ExportOptions{Version: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ImportCAR(ctx, bytes.NewReader(car.Bytes()), store.ImportOptions{}); err != nil {
			t.Fatalf("%T reimport: %v", b, err)
		}
		if err := b.Unpin(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := b.Unpin(ctx, c); !errors.Is(err, store.ErrNotPinned) {
			t.Fatalf("%T second unpin: %v, want ErrNotPinned", b, err)
		}
		if _, err := b.GetBlock(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.LogAppend(ctx, []byte("entry")); err != nil {
			t.Fatal(err)
		}
	}
	if n.Log.Size() != 2 {
		t.Fatalf("log size %d, want 2", n.Log.Size())
	}
}

func TestWritesNeedTokenAndBodiesAreLimited(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{MaxAdd: 1 << 20, MaxCAR: 1 << 20}))
	defer srv.Close()
	before, _ := n.Store.Stat(context.Background())
	tests := []struct {
		name, method, path, auth string
		body                     io.Reader
		want                     int
	}{
		{"no token", "POST", "/api/v1/add", "", strings.NewReader("x"), 401},
		{"wrong token", "POST", "/api/v1/add", "Bearer " + strings.Repeat("0", len(tok)), strings.NewReader("x"), 401},
		{"basic auth", "POST", "/api/v1/blocks", "Basic " + tok, strings.NewReader("x"), 401},
		{"delete pin without token", "DELETE", "/api/v1/pins/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "", nil, 401},
		{"too large add", "POST", "/api/v1/add", "Bearer " + tok, bytes.NewReader(make([]byte, 2<<20)), 413},
		{"too large block", "POST", "/api/v1/blocks", "Bearer " + tok, bytes.NewReader(make([]byte, store.MaxBlockSize+1)), 413},
		{"garbage CAR", "POST", "/api/v1/car", "Bearer " + tok, strings.NewReader("not a car"), 400},
		{"bad cid", "GET", "/api/v1/blocks/nope", "", nil, 400},
		{"missing block", "GET", "/api/v1/blocks/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "", nil, 404},
		{"bad chunker", "POST", "/api/v1/add?chunker=rabin-1", "Bearer " + tok, strings.NewReader("x"), 400},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, tc.body)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	after, _ := n.Store.Stat(context.Background())
	if after != before || n.Log.Size() != 0 {
		t.Fatalf("refused requests changed the node: %+v -> %+v, log %d", before, after, n.Log.Size())
	}
}

// FuzzHandler: no request, however malformed, makes the API panic or
// answer 5xx.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "/api/v1/stat", "", []byte(nil), true)
	f.Add("POST", "/api/v1/add?chunker=buzhash&pin=false", "", []byte("hello"), true)
	f.Add("POST", "/api/v1/blocks?codec=dag-cbor", "", []byte{0xa0}, true)
	f.Add("POST", "/api/v1/car?pin=maybe", "", []byte{0x3a, 0xa2}, true)
	f.Add("GET", "/api/v1/cat/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku?offset=-1", "", []byte(nil), false)
	f.Add("POST", "/api/v1/pins/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku?direct=true", "", []byte(nil), true)
	f.Add("GET", "/api/v1/car/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku?version=3", "", []byte(nil), false)
	n, tok := newNode(f)
	h := Handler(n, tok, Limits{MaxAdd: 1 << 20, MaxCAR: 1 << 20})
	f.Fuzz(func(t *testing.T, method, path, _ string, body []byte, auth bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://node"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
		}
	})
}
