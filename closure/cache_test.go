package closure

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
)

// serveCache imports top from the local Nix and serves it at <url>/nix.
func serveCache(t *testing.T, top string, o CacheOptions) (string, signature.PublicKey, *ImportResult) {
	t.Helper()
	st, db := newStore(t)
	res, err := Import(context.Background(), st, db, &LocalNix{}, top, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sk, pk, err := signature.GenerateKeypair("agentix-test-1", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewCacheHandler(st, db, sk, o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/nix/", http.StripPrefix("/nix", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/nix", pk, res
}

func TestCacheNixCopy(t *testing.T) {
	n := nixtest.Require(t)
	top, built := testClosure(n, "common")
	for _, comp := range []string{"none", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			n := n.For(t)
			url, pk, _ := serveCache(t, top, CacheOptions{Compression: comp})
			_, otherPK, _ := signature.GenerateKeypair("someone-else-1", rand.Reader)
			copyTo := func(key string) (string, error) {
				root := filepath.Join(t.TempDir(), "root")
				_, err := n.Try("nix", "copy", "--from", url, "--to", root,
					"--option", "trusted-public-keys", key,
					"--option", "require-sigs", "true",
					"--option", "narinfo-cache-negative-ttl", "0",
					top)
				return root, err
			}
			// An untrusted key: Nix refuses the paths.
			if _, err := copyTo(otherPK.String()); err == nil {
				t.Fatal("nix copy succeeded although the cache's key is not trusted")
			} else if !strings.Contains(err.Error(), "signature") {
				t.Logf("untrusted copy failed (as it should) with: %v", err)
			}
			// The node's key: the whole closure arrives and verifies.
			root, err := copyTo(pk.String())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range built {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Fatalf("%s not copied: %v", p, err)
				}
			}
			n.Run("nix", "store", "verify", "--store", root, "--recursive", "--sigs-needed", "1",
				"--option", "trusted-public-keys", pk.String(), top)
		})
	}
}

func TestCacheHandler(t *testing.T) {
	n := nixtest.Require(t)
	top, _ := testClosure(n, "common")
	url, pk, _ := serveCache(t, top, CacheOptions{})
	get := func(p string) (int, string) {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/nix-cache-info")
	if code != 200 || !strings.Contains(body, "StoreDir: /nix/store") {
		t.Fatalf("nix-cache-info: %d %q", code, body)
	}
	code, body = get("/" + hashPart(top) + ".narinfo")
	if code != 200 {
		t.Fatalf("narinfo: %d %q", code, body)
	}
	ni, err := narinfo.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ni.StorePath != top || !signature.VerifyFirst(ni.Fingerprint(), ni.Signatures, []signature.PublicKey{pk}) {
		t.Fatalf("narinfo %q is not signed by %s", body, pk)
	}
	code, nar := get("/" + ni.URL)
	if code != 200 || int64(len(nar)) != int64(ni.NarSize) || CheckNAR(strings.NewReader(nar)) != nil {
		t.Fatalf("NAR: %d, %d bytes", code, len(nar))
	}
	for _, p := range []string{
		"/00000000000000000000000000000000.narinfo",
		"/nar/0000000000000000000000000000000000000000000000000000.nar",
		"/nar/x.narinfo",
		"/whatever",
	} {
		if code, _ := get(p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	resp, err := http.Post(url+"/nix-cache-info", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}

	// Our own binary-cache client reads our cache back.
	st, db := newStore(t)
	bc, err := NewBinaryCache(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(context.Background(), st, db, bc, top, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCacheHandler(nil, nil, signature.SecretKey{}, CacheOptions{Compression: "br"}); err == nil {
		t.Fatal("unsupported compression accepted")
	}
}

// TestCacheNARRequests: a whole NAR (the request Nix makes), HEAD and a
// Range request each answer with the NAR's bytes and length.
func TestCacheNARRequests(t *testing.T) {
	n := nixtest.Require(t)
	top, built := testClosure(n, "common")
	data := built[1] // several hundred KiB: more than one block
	url, _, _ := serveCache(t, top, CacheOptions{})
	want := n.Dump(data)
	resp, err := http.Get(url + "/" + hashPart(data) + ".narinfo")
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.Parse(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, rng string
		code              int
		body              []byte
	}{
		{"whole", http.MethodGet, "", 200, want},
		{"head", http.MethodHead, "", 200, nil},
		{"range", http.MethodGet, "bytes=1000-200999", 206, want[1000:201000]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, url+"/"+ni.URL, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			wantLen := int64(len(want))
			if tc.body != nil {
				wantLen = int64(len(tc.body))
			}
			if resp.StatusCode != tc.code || resp.ContentLength != wantLen || !bytes.Equal(body, tc.body) {
				t.Fatalf("%s %s: %d, Content-Length %d, %d bytes; want %d, %d, %d bytes", tc.method, tc.rng, resp.StatusCode, resp.ContentLength, len(body), tc.code, wantLen, len(tc.body))
			}
		})
	}
}

// TestCacheNarinfoCached: a narinfo asked for again is the same text, served
// without reading, decoding and signing the record again (Nix asks for
// hundreds at once); the index is still consulted, so an unknown hash part
// stays a 404.
func TestCacheNarinfoCached(t *testing.T) {
	n := nixtest.Require(t)
	top, _ := testClosure(n, "common")
	st, db := newStore(t)
	if _, err := Import(context.Background(), st, db, &LocalNix{}, top, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	sk, _, err := signature.GenerateKeypair("agentix-test-1", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewCacheHandler(st, db, sk, CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	path := "/" + hashPart(top) + ".narinfo"
	first := get(path)
	if first.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, first.Code, first.Body)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if w := get(path); w.Code != http.StatusOK || w.Body.String() != first.Body.String() {
			t.Fatalf("GET %s again: %d, body %q, want %q", path, w.Code, w.Body, first.Body)
		}
	})
	t.Logf("GET %s again: %.0f allocations", path, allocs)
	if allocs > 60 {
		t.Fatalf("GET %s again: %.0f allocations: the record is read and signed again", path, allocs)
	}
	if w := get("/" + strings.Repeat("0", 32) + ".narinfo"); w.Code != http.StatusNotFound {
		t.Fatalf("unknown narinfo: %d, want 404", w.Code)
	}
}
