package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"fmt"
	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/api"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentix/agentix-store/internal/node"
)

func newDaemon(t *testing.T, lim Limits) (*node.Node, *httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	m := NewMetrics()
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "daemon-test", OnBatch: m.OnBatch})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Handler(n, Options{Metrics: m, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); n.Close() })
	tok, _ := node.ReadKey(dir, node.TokenFile)
	return n, srv, tok
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMountsAndMetrics(t *testing.T) {
	_, srv, tok := newDaemon(t, Limits{})
	for path, want := range map[string]string{
		"/healthz":             "ok",
		"/nix/nix-cache-info":  "StoreDir: /nix/store",
		"/log/checkpoint":      "agentix-store/daemon-test\n0\n",
		"/api/v1/stat":         `"blocks"`,
		"/api/v1/attestations": "[]",
	} {
		code, body := get(t, srv.URL+path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want 200 containing %q", path, code, body, want)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", strings.NewReader("an entry"))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("append: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("POST", srv.URL+"/api/v1/car", strings.NewReader("not a CAR"))
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("garbage CAR: %v %v", err, resp)
	}
	resp.Body.Close()
	_, metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		"agentix_log_appends_total 1",
		"agentix_log_size 1",
		"agentix_log_index_lag 1",
		"agentix_log_batch_entries_count 1",
		`agentix_http_requests_total{code="200",route="POST api/log"} 1`,
		"agentix_store_blocks",
		`agentix_verification_failures_total{route="POST api/car"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// 1,000 writes without a valid credential (no token, wrong tokens, requests
// signed by an untrusted key, or signed by the node's own key over something
// else): none accepted, nothing stored.
func TestThousandUnauthenticatedWrites(t *testing.T) {
	n, srv, tok := newDaemon(t, Limits{})
	stranger := genSigner(t)
	nodeKey, err := attest.LoadSigner(filepath.Join(n.Dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, _ := n.Store.Stat(ctx)
	paths := []string{"/api/v1/add", "/api/v1/blocks", "/api/v1/car", "/api/v1/log/append", "/api/v1/attestations",
		"/api/v1/gc", "/api/v1/pins/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}
	auths := []string{"", "Bearer ", "Bearer wrong", "Bearer " + strings.ToUpper(tok), "Basic " + tok, "Bearer " + tok[:len(tok)-1], tok}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	sem := make(chan struct{}, 32)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			body := make([]byte, 64+i)
			rand.Read(body)
			req, _ := http.NewRequest("POST", srv.URL+paths[i%len(paths)], bytes.NewReader(body))
			sum := sha256.Sum256(body)
			switch k := i % (len(auths) + 2); {
			case k < len(auths):
				if a := auths[k]; a != "" {
					req.Header.Set("Authorization", a)
				}
			case k == len(auths):
				api.SignRequest(req, stranger, sum[:], time.Now())
			default:
				// The node's own key, but signed over another body.
				other := sha256.Sum256(append(body, 'x'))
				api.SignRequest(req, nodeKey, other[:], time.Now())
				req.Header.Set("X-Content-SHA256", hex.EncodeToString(sum[:]))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	after, _ := n.Store.Stat(ctx)
	if accepted != 0 || after != before || n.Log.Size() != 0 {
		t.Fatalf("accepted %d unauthenticated writes; store %+v -> %+v; log size %d", accepted, before, after, n.Log.Size())
	}
	_, metrics := get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, "agentix_http_unauthorized_total 1000") {
		t.Errorf("unauthorized counter not at 1000")
	}
}

// With one write slot, a write arriving while another write is being
// worked on waits, then gets 503 with Retry-After; /healthz and reads have
// their own limits and still answer.
func TestConcurrencyBound(t *testing.T) {
	release := make(chan struct{})
	working := make(chan struct{}, 1)
	h := bound(Limits{MaxConcurrent: 1, MaxReads: 1, QueueWait: 200 * time.Millisecond, IdleIO: time.Second,
		BodyTimeout: time.Second, MinBodyRate: 1 << 20},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/slow" {
				working <- struct{}{}
				<-release
			}
			fmt.Fprintln(w, "ok")
		}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/slow", "text/plain", strings.NewReader("x"))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-working
	resp, err := http.Post(srv.URL+"/other", "text/plain", strings.NewReader("y"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second write while the slot is held: %d", resp.StatusCode)
	}
	for _, path := range []string{"/healthz", "/log/checkpoint"} {
		if code, _ := get(t, srv.URL+path); code != 200 {
			t.Fatalf("GET %s while the write slot is held: %d", path, code)
		}
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("slow write finished with %d", code)
	}
	resp, err = http.Post(srv.URL+"/other", "text/plain", strings.NewReader("y"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after the slot is free: %d", resp.StatusCode)
	}
}

// A client that stops sending its body mid-upload is dropped after IdleIO.
func TestSlowClientTimesOut(t *testing.T) {
	_, srv, tok := newDaemon(t, Limits{IdleIO: 300 * time.Millisecond})
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/add", pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				err = fmt.Errorf("stalled upload accepted: %s", b)
			}
		}
		errc <- err
	}()
	pw.Write([]byte("a few bytes, then nothing"))
	select {
	case err := <-errc:
		if err != nil && strings.Contains(err.Error(), "accepted") {
			t.Fatal(err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("dropped only after %v", time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stalled upload not dropped within 10s")
	}
}

func genSigner(t *testing.T) *attest.Signer {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k")
	priv, pub, err := attest.GenerateKey("")
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
