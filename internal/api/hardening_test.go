package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The Authorization scheme is case-insensitive (RFC 9110 11.1), for the
// bearer token and for signed requests; the token itself is not.
func TestAuthSchemeCaseInsensitive(t *testing.T) {
	n, tok := newNode(t)
	op := operatorKey(t, attest.AlgEd25519)
	srv := httptest.NewServer(Handler(n, tok, Limits{Operators: attest.NewKeySet(op.Verifier())}))
	defer srv.Close()
	appends := 0
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"bearer " + tok, 200},
		{"BEARER " + tok, 200},
		{"bEaReR  " + tok, 200},
		{"Bearer " + strings.ToUpper(tok), 401},
		{"bearer", 401},
		{"bearertoken " + tok, 401},
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", strings.NewReader("e"))
		req.Header.Set("Authorization", tc.auth)
		if got, body := do(t, req); got != tc.want {
			t.Errorf("Authorization %q: %d %s, want %d", tc.auth, got, body, tc.want)
		} else if got == 200 {
			appends++
		}
	}
	for _, scheme := range []string{"agentixsig", "AGENTIXSIG"} {
		body := []byte("signed " + scheme)
		sum := sha256.Sum256(body)
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", bytes.NewReader(body))
		SignRequest(req, op, sum[:], time.Now())
		req.Header.Set("Authorization", scheme+strings.TrimPrefix(req.Header.Get("Authorization"), SigScheme))
		if got, b := do(t, req); got != 200 {
			t.Errorf("scheme %q: %d %s, want 200", scheme, got, b)
		} else {
			appends++
		}
	}
	if n.Log.Size() != uint64(appends) {
		t.Fatalf("log size %d, want %d", n.Log.Size(), appends)
	}
}

// A signed request replayed after the node restarts (same data dir, fresh
// process state) is refused: the nonce was kept in the database.
func TestSignedReplayRefusedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	op := operatorKey(t, attest.AlgEd25519)
	body := []byte("an entry, signed once")
	sum := sha256.Sum256(body)
	// Host is part of the signed message: the same name for both servers.
	signed, _ := http.NewRequest("POST", "http://node.test/api/v1/log/append", nil)
	if err := SignRequest(signed, op, sum[:], time.Now()); err != nil {
		t.Fatal(err)
	}
	send := func(n *node.Node) (int, string) {
		tok, _ := node.ReadKey(dir, node.TokenFile)
		srv := httptest.NewServer(Handler(n, tok, Limits{Operators: attest.NewKeySet(op.Verifier())}))
		defer srv.Close()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", bytes.NewReader(body))
		req.Host = "node.test"
		req.Header = signed.Header.Clone()
		return do(t, req)
	}
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "replay"})
	if err != nil {
		t.Fatal(err)
	}
	if code, b := send(n); code != 200 {
		t.Fatalf("first signed append: %d %s", code, b)
	}
	if code, _ := send(n); code != 401 {
		t.Fatalf("replay before restart: %d, want 401", code)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, err = node.Open(dir, node.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	code, b := send(n)
	if code != 401 || !strings.Contains(b, "replayed") {
		t.Errorf("replay after restart: %d %s, want 401 naming the replay", code, b)
	}
	if n.Log.Size() != 1 {
		t.Fatalf("log size %d after the replay, want 1", n.Log.Size())
	}
}

// rawRequest writes head and body on a fresh TCP connection, half-closes
// it, and reads the answer.
func rawRequest(t *testing.T, addr, head string, body []byte) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	c.Write(body)
	c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A body that ends before its Content-Length is the client's fault: 400
// naming it, and nothing stored.
func TestShortBodyIs400(t *testing.T) {
	n, tok := newNode(t)
	op := operatorKey(t, attest.AlgEd25519)
	srv := httptest.NewServer(Handler(n, tok, Limits{Operators: attest.NewKeySet(op.Verifier())}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	before, _ := n.Store.Stat(context.Background())
	big := make([]byte, 3<<20)
	rand.Read(big)
	for _, path := range []string{"/api/v1/log/append", "/api/v1/add", "/api/v1/blocks", "/api/v1/car", "/api/v1/attestations"} {
		for _, signed := range []bool{false, true} {
			body := []byte("shorter than announced")
			if path == "/api/v1/add" {
				body = big // several chunks before it ends
			}
			auth := "Bearer " + tok
			if signed {
				req, _ := http.NewRequest("POST", "http://"+addr+path, nil)
				sum := sha256.Sum256(append(body, make([]byte, 100)...))
				SignRequest(req, op, sum[:], time.Now())
				auth = req.Header.Get("Authorization") + "\r\nX-Content-SHA256: " + req.Header.Get("X-Content-SHA256")
			}
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", path, addr, auth, len(body)+100)
			code, msg := rawRequest(t, addr, head, body)
			if code != 400 || !strings.Contains(msg, "Content-Length") {
				t.Errorf("%s (signed %v) with a short body: %d %s, want 400 naming the Content-Length", path, signed, code, msg)
			}
		}
	}
	after, _ := n.Store.Stat(context.Background())
	if n.Log.Size() != 0 || after.Pins != before.Pins {
		t.Fatalf("short bodies changed the node: %+v -> %+v, log %d", before, after, n.Log.Size())
	}
}

// pin-from with a peer that is not an http(s) URL: 400 naming the scheme.
func TestPinFromPeerScheme(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	const c = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	for _, tc := range []struct{ peer, want string }{
		{"file:///etc/passwd", `scheme \"file\"`},
		{"ftp://peer.example/", `scheme \"ftp\"`},
		{"FILE:///x", `scheme \"file\"`},
		{"/just/a/path", "no scheme"},
		{"http:///nohost", "no host"},
	} {
		for _, target := range []string{c, "/nix/store/00000000000000000000000000000000-x"} {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/pin-from?peer="+tc.peer+"&target="+target, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			code, b := do(t, req)
			if code != 400 || !strings.Contains(b, tc.want) {
				t.Errorf("peer %q target %s: %d %s, want 400 naming %s", tc.peer, target, code, b, tc.want)
			}
		}
	}
	if _, err := (Local{N: n}).PinFrom(context.Background(), "file:///x", c, "", nil); !errors.Is(err, ErrPeerURL) {
		t.Errorf("Local.PinFrom file:// = %v, want ErrPeerURL", err)
	}
}

// POST /blocks refuses bytes that do not decode in the codec they claim.
func TestBlockPutChecksCodec(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	for _, tc := range []struct {
		codec string
		data  []byte
		want  int
	}{
		{"dag-cbor", []byte("\xffnot cbor at all"), 400},
		{"dag-cbor", []byte{0xa0, 0x00}, 400}, // trailing byte
		{"dag-cbor", []byte{0xbf, 0xff}, 400}, // indefinite length: not DAG-CBOR
		{"dag-json", []byte(`{"a":`), 400},
		{"dag-pb", []byte{0xff, 0xff, 0xff}, 400},
		{"dag-cbor", []byte{0xa1, 0x61, 0x61, 0x01}, 200}, // {"a": 1}
		{"dag-json", []byte(`{"a":1}`), 200},
		{"raw", []byte("anything"), 200},
	} {
		before, _ := n.Store.Stat(context.Background())
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/blocks?codec="+tc.codec, bytes.NewReader(tc.data))
		req.Header.Set("Authorization", "Bearer "+tok)
		code, b := do(t, req)
		after, _ := n.Store.Stat(context.Background())
		if code != tc.want {
			t.Errorf("%s %x: %d %s, want %d", tc.codec, tc.data, code, b, tc.want)
		}
		if stored := after.Blocks - before.Blocks; (tc.want == 200) != (stored == 1) {
			t.Errorf("%s %x: %d blocks stored", tc.codec, tc.data, stored)
		}
	}
}

// A signed write whose body fails its signed digest stores nothing, however
// large the body (the add of several chunks used to leave them behind).
func TestSignedBodyDigestMismatchStoresNothing(t *testing.T) {
	n, tok := newNode(t)
	op := operatorKey(t, attest.AlgEd25519)
	srv := httptest.NewServer(Handler(n, tok, Limits{Operators: attest.NewKeySet(op.Verifier())}))
	defer srv.Close()
	ctx := context.Background()
	body := make([]byte, 8<<20) // several 2 MiB write batches
	rand.Read(body)
	// A CAR whose blocks are valid: a store that imported it would keep them.
	var car bytes.Buffer
	{
		other, _ := newNode(t)
		c, err := other.Store.Add(ctx, bytes.NewReader(body), store.AddOptions{Chunker: "size-65536"})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Store.ExportCAR(ctx, &car, c, store.ExportOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path string
		body []byte
	}{
		{"/api/v1/add?chunker=size-65536", body},
		{"/api/v1/add", body},
		{"/api/v1/car", car.Bytes()},
		{"/api/v1/blocks", body[:1<<20]},
	} {
		before, _ := n.Store.Stat(ctx)
		req, _ := http.NewRequest("POST", srv.URL+tc.path, bytes.NewReader(tc.body))
		wrong := sha256.Sum256([]byte("what was signed"))
		SignRequest(req, op, wrong[:], time.Now())
		code, b := do(t, req)
		after, _ := n.Store.Stat(ctx)
		if code != 400 || !strings.Contains(b, "X-Content-SHA256") {
			t.Errorf("%s with a body not matching its digest: %d %s, want 400", tc.path, code, b)
		}
		if after != before {
			t.Errorf("%s refused, yet the store changed: %+v -> %+v", tc.path, before, after)
		}
	}
	// The spool directory holds nothing afterwards.
	ents, _ := os.ReadDir(filepath.Join(n.Dir, spoolDir))
	if len(ents) != 0 {
		t.Errorf("%d spooled bodies left behind", len(ents))
	}
	// And a matching signed add of the same body still works.
	c := &Client{Base: srv.URL, Signer: op}
	if _, err := c.Add(ctx, bytes.NewReader(body), store.AddOptions{Pin: true}); err != nil {
		t.Fatalf("signed add with the right digest: %v", err)
	}
}

// corruptBlock flips a byte of an inline block's badger value.
func corruptBlock(t *testing.T, db *badger.DB, c cid.Cid) {
	t.Helper()
	key := append(append([]byte{}, kv.PrefixBlocks...), c.Hash()...)
	err := db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		if it.UserMeta() != 0 {
			return errors.New("block is in a pack file")
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)/2] ^= 0x01
		return txn.Set(key, v)
	})
	if err != nil {
		t.Fatalf("corrupt %s: %v", c, err)
	}
}

// BrokenDAG adds a file of many small (inline) chunks and breaks one leaf
// near its end: deleted (missing) or with a byte flipped (corrupt).
func brokenDAG(t *testing.T, n *node.Node, how string) cid.Cid {
	t.Helper()
	ctx := context.Background()
	data := make([]byte, 256<<10)
	rand.Read(data)
	root, err := n.Store.Add(ctx, bytes.NewReader(data), store.AddOptions{Chunker: "size-4096", Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	blk, err := n.Store.Blockstore().Get(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	links, err := store.Links(blk)
	if err != nil || len(links) < 40 {
		t.Fatalf("root links: %d, %v", len(links), err)
	}
	leaf := links[len(links)-3]
	switch how {
	case "missing":
		if err := n.Store.Blockstore().DeleteBlock(ctx, leaf); err != nil {
			t.Fatal(err)
		}
	case "corrupt":
		corruptBlock(t, n.DB, leaf)
	}
	return root
}

// readAll GETs url and reports the status and whether the body read to a
// clean end.
func readAll(url string) (code int, body []byte, readErr error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, readErr = io.ReadAll(resp.Body)
	return resp.StatusCode, body, readErr
}

// GET /api/v1/car of a DAG with a missing or corrupt block never answers a
// complete-looking 200: an error status, or a stream the client sees fail.
func TestCARExportOfBrokenDAG(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	for _, how := range []string{"missing", "corrupt"} {
		root := brokenDAG(t, n, how)
		for _, v := range []string{"1", "2"} {
			code, body, err := readAll(srv.URL + "/api/v1/car/" + root.String() + "?version=" + v)
			if code == 200 && err == nil {
				t.Errorf("CARv%s of a DAG with a %s block: 200, %d bytes read to a clean end", v, how, len(body))
			}
		}
	}
}

// decodePeerClosures reads what a real node's /api/v1/closures writes.
func TestDecodePeerClosures(t *testing.T) {
	c, _ := store.ParseCID("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	rec := httptest.NewRecorder()
	writeJSON(rec, 200, []closure.ClosureSummary{{CID: c, Root: "/nix/store/abc-x", Paths: 3, NarBytes: 10, Imported: time.Now().UTC()}})
	list, err := decodePeerClosures(rec.Body.Bytes())
	if err != nil || len(list) != 1 || !list[0].c.Equals(c) || list[0].Root != "/nix/store/abc-x" {
		t.Fatalf("decode %s: %+v, %v", rec.Body.String(), list, err)
	}
	for _, bad := range []string{
		`[{"cid":"` + c.String() + `","root":"/a","Root":"/b"}]`,
		`[{"cid":"` + c.String() + `","root":"/a","root":"/b"}]`,
		`[{"CID":"` + c.String() + `","root":"/a"}]`,
		`[{"cid":"nope","root":"/a"}]`,
		`[{"root":"/a"}]`,
	} {
		if _, err := decodePeerClosures([]byte(bad)); err == nil {
			t.Errorf("decodePeerClosures(%s): accepted", bad)
		}
	}
}

// An envelope whose objects repeat a member name, exactly or in another
// case, is refused with 400 naming the member; nothing is published.
func TestPublishRefusesDuplicateMembers(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	for _, tc := range []struct{ env, name string }{
		{`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","payload":"e30=","signatures":[]}`, `\"payload\"`},
		{`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","PayloadType":"x","signatures":[]}`, `\"PayloadType\"`},
		{`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"a","sig":"AA==","Sig":"AA=="}]}`, `\"Sig\"`},
		{`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]} {}`, "more than one value"},
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/attestations", strings.NewReader(tc.env))
		req.Header.Set("Authorization", "Bearer "+tok)
		code, b := do(t, req)
		if code != 400 || !strings.Contains(b, tc.name) {
			t.Errorf("envelope %s: %d %s, want 400 naming %s", tc.env, code, b, tc.name)
		}
	}
	if n.Log.Size() != 0 {
		t.Fatalf("log size %d", n.Log.Size())
	}
}
