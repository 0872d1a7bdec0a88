package daemon

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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// serve runs Serve on a loopback listener until the test ends.
func serve(t *testing.T, lim Limits) (n *node.Node, base, tok string) {
	t.Helper()
	dir := t.TempDir()
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "daemon-test"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, n, l, Options{Limits: lim}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			t.Error("Serve did not return")
		}
		n.Close()
	})
	tok, _ = node.ReadKey(dir, node.TokenFile)
	return n, "http://" + l.Addr().String(), tok
}

// slowLoris holds count connections, each having sent the headers of a
// POST with a 60000-byte body and then one body byte every 2 s, until stop
// is closed. It returns the connections (for counting the ones left open).
func slowLoris(t *testing.T, addr string, count int, stop <-chan struct{}, wg *sync.WaitGroup) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, count)
	for range count {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		fmt.Fprintf(c, "POST /log/add-checkpoint HTTP/1.1\r\nHost: %s\r\nContent-Length: 60000\r\n\r\nx", addr)
		conns = append(conns, c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				for _, c := range conns {
					c.Close()
				}
				return
			case <-tick.C:
				for _, c := range conns {
					c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					c.Write([]byte("x")) // fails on the ones the daemon closed
				}
			}
		}
	}()
	return conns
}

// stillOpen counts the connections the daemon has not closed.
func stillOpen(conns []net.Conn) int {
	open := 0
	var b [1]byte
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	return open
}

// Issue 12 item 3: 520 unauthenticated connections trickling request
// bodies (one byte every 2 s) do not starve the node: /healthz, a read, and
// authenticated writes (bearer token and operator signature) all answer
// within 1 s, each on a fresh connection from the same address, and the
// attacker keeps at most the per-address bound of connections.
func TestSlowLorisDoesNotStarveDaemon(t *testing.T) {
	n, base, tok := serve(t, Limits{})
	addr := strings.TrimPrefix(base, "http://")
	op, err := attest.LoadSigner(filepath.Join(n.Dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	conns := slowLoris(t, addr, 520, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(300 * time.Millisecond) // let the daemon read all their headers

	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	probe := func(what string, req *http.Request) {
		t.Helper()
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s under load: %v", what, err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || time.Since(start) > time.Second {
			t.Errorf("%s under load: %d after %v: %s", what, resp.StatusCode, time.Since(start), b)
		}
	}
	for round := range 2 {
		for range 3 {
			req, _ := http.NewRequest("GET", base+"/healthz", nil)
			probe("GET /healthz", req)
		}
		req, _ := http.NewRequest("GET", base+"/log/checkpoint", nil)
		probe("GET /log/checkpoint", req)
		req, _ = http.NewRequest("POST", base+"/api/v1/log/append", strings.NewReader("with the token"))
		req.Header.Set("Authorization", "Bearer "+tok)
		probe("bearer append", req)
		body := []byte(fmt.Sprintf("signed, round %d", round))
		sum := sha256.Sum256(body)
		req, _ = http.NewRequest("POST", base+"/api/v1/log/append", bytes.NewReader(body))
		api.SignRequest(req, op, sum[:], time.Now())
		probe("signed append", req)
		if round == 0 {
			time.Sleep(2100 * time.Millisecond) // across one trickle tick
		}
	}
	if got := n.Log.Size(); got != 4 {
		t.Errorf("log size %d, want the 4 authenticated appends", got)
	}
	if open := stillOpen(conns); open > defaultMaxConnsPerAddr {
		t.Errorf("%d of the 520 unauthenticated connections still open, want at most %d (the per-address bound)", open, defaultMaxConnsPerAddr)
	}
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var evicted int
	for _, line := range strings.Split(string(metrics), "\n") {
		if v, ok := strings.CutPrefix(line, "agentix_http_connections_evicted_total "); ok {
			fmt.Sscan(v, &evicted)
		}
	}
	if evicted < 520-defaultMaxConnsPerAddr {
		t.Errorf("agentix_http_connections_evicted_total %d, want at least %d", evicted, 520-defaultMaxConnsPerAddr)
	}
}

// Requests waiting for their bodies do not hold in-flight slots: with two
// slots and six uploads stalled mid-body, another write is served at once.
func TestSlowBodiesDoNotHoldSlots(t *testing.T) {
	n, srv, tok := newDaemon(t, Limits{MaxConcurrent: 2, QueueWait: 300 * time.Millisecond})
	var pws []*io.PipeWriter
	var wg sync.WaitGroup
	for i := range 6 {
		pr, pw := io.Pipe()
		pws = append(pws, pw)
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", pr)
		req.Header.Set("Authorization", "Bearer "+tok)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		pw.Write([]byte(fmt.Sprintf("stalled upload %d ", i)))
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/log/append", strings.NewReader("prompt"))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) > time.Second {
		t.Errorf("write while six uploads stall mid-body: %d after %v, want 200 at once", resp.StatusCode, time.Since(start))
	}
	for _, pw := range pws {
		pw.Close()
	}
	wg.Wait()
	if n.Log.Size() != 7 {
		t.Errorf("log size %d, want 7 (the stalled uploads complete once their bodies end)", n.Log.Size())
	}
}

// A body that keeps trickling (so no single read is ever idle) is still
// cut off at its whole-body deadline: BodyTimeout + Content-Length at
// MinBodyRate.
func TestBodyDeadlineCoversWholeBody(t *testing.T) {
	n, srv, tok := newDaemon(t, Limits{BodyTimeout: 500 * time.Millisecond, MinBodyRate: 64 << 10})
	addr := strings.TrimPrefix(srv.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/v1/log/append HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 60000\r\n\r\n", addr, tok)
	start := time.Now()
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- "connection closed: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-answered:
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("trickling body cut off only after %v (%s)", d, got)
			}
			if strings.HasPrefix(got, "200") {
				t.Fatalf("trickling body accepted: %s", got)
			}
			t.Logf("after %v: %s", time.Since(start).Round(time.Millisecond), got)
			if n.Log.Size() != 0 {
				t.Fatalf("log size %d", n.Log.Size())
			}
			return
		case <-tick.C:
			c.Write([]byte("x"))
			if time.Since(start) > 5*time.Second {
				t.Fatal("trickling body (one byte per 100 ms) still read after 5 s; deadline 0.5 s + 60000 B at 64 KiB/s")
			}
		}
	}
}

// The per-address bound: beyond it the oldest unauthenticated connection
// (an idle one first) is closed; authenticated connections do not count.
func TestConnTrackerEvictsOldestUnproven(t *testing.T) {
	tr := newConnTracker(2)
	var conns []net.Conn
	pipe := func() net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &addrConn{Conn: a, remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1000 + len(conns)}}
	}
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.ErrClosedPipe)
	}
	ctxs := []context.Context{}
	for range 3 {
		c := pipe()
		conns = append(conns, c)
		ctxs = append(ctxs, tr.connContext(context.Background(), c))
	}
	if !closed(conns[0]) || closed(conns[1]) || closed(conns[2]) {
		t.Fatal("third connection of one address: the oldest should be closed, the others not")
	}
	// Authenticate conns[1]: it no longer counts.
	req, _ := http.NewRequestWithContext(ctxs[1], "POST", "http://x/", nil)
	authenticated(req)
	tr.connState(conns[2], http.StateIdle)
	c4 := pipe()
	tr.connContext(context.Background(), c4)
	if closed(conns[1]) || closed(c4) || closed(conns[2]) {
		t.Fatal("with one authenticated connection, a third unauthenticated one fits")
	}
	c5 := pipe()
	tr.connContext(context.Background(), c5)
	if !closed(conns[2]) || closed(c4) || closed(conns[1]) {
		t.Fatal("beyond the bound the idle connection should be closed first")
	}
	if got := tr.unproven("10.0.0.1"); got != 2 {
		t.Fatalf("%d unproven connections counted, want 2", got)
	}
	for _, c := range []net.Conn{conns[0], conns[1], conns[2], c4, c5} {
		tr.connState(c, http.StateClosed)
	}
	if got := tr.unproven("10.0.0.1"); got != 0 || len(tr.conns) != 0 {
		t.Fatalf("after closing all: %d unproven, %d tracked", got, len(tr.conns))
	}
	if a, b := addrKey(&net.TCPAddr{IP: net.ParseIP("2001:db8::1")}), addrKey(&net.TCPAddr{IP: net.ParseIP("2001:db8::2")}); a != b {
		t.Errorf("IPv6 addresses of one /64 keyed %q and %q", a, b)
	}
}

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (a *addrConn) RemoteAddr() net.Addr { return a.remote }

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

// brokenDAG adds a file of many small (inline) chunks and breaks one leaf
// near its end, or its root: deleted or with a byte flipped.
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
	case "missing leaf":
		err = n.Store.Blockstore().DeleteBlock(ctx, leaf)
	case "corrupt leaf":
		corruptBlock(t, n.DB, leaf)
	case "missing root":
		err = n.Store.Blockstore().DeleteBlock(ctx, root)
	case "corrupt root":
		corruptBlock(t, n.DB, root)
	}
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// /ipfs/<cid>?format=car (and Accept: application/vnd.ipld.car) of a DAG
// with a missing or corrupt block never reads as a complete 200: the
// client sees an error status or a failed stream, never an error text
// appended to a 200 body.
func TestGatewayCAROfBrokenDAG(t *testing.T) {
	n, srv, _ := newDaemon(t, Limits{})
	// Controls: an intact DAG reads to a clean end; a missing block asked
	// for raw is an honest 404.
	good := brokenDAG(t, n, "intact")
	if code, body, err := readAllURL(srv.URL + "/ipfs/" + good.String() + "?format=car"); code != 200 || err != nil || len(body) < 256<<10 {
		t.Fatalf("CAR of an intact DAG: %d, %d bytes, %v", code, len(body), err)
	}
	if code, _, _ := readAllURL(srv.URL + "/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku?format=raw"); code != 404 {
		t.Fatalf("raw missing block: %d, want 404", code)
	}
	for _, how := range []string{"missing leaf", "corrupt leaf", "missing root", "corrupt root"} {
		root := brokenDAG(t, n, how)
		for _, tc := range []struct{ query, accept string }{
			{"?format=car", ""},
			{"?format=car&dag-scope=all", ""},
			{"", "application/vnd.ipld.car"},
		} {
			req, _ := http.NewRequest("GET", srv.URL+"/ipfs/"+root.String()+tc.query, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue // aborted before the status line: fine
			}
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && rerr == nil {
				t.Errorf("%s, GET /ipfs/<root>%s accept %q: 200 read to a clean end (%d bytes, ends %q)",
					how, tc.query, tc.accept, len(body), body[max(0, len(body)-70):])
			}
		}
	}
}

func readAllURL(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Only time spent waiting for the client counts toward a body's deadline:
// a handler that starts reading late (behind a lock, say) still gets a
// body its client sent promptly.
func TestBodyDeadlineCountsOnlyClientTime(t *testing.T) {
	h := bound(Limits{MaxConcurrent: 4, MaxReads: 4, QueueWait: time.Second, IdleIO: time.Second,
		BodyTimeout: 200 * time.Millisecond, MinBodyRate: 1 << 20, MaxConnsPerAddr: 4},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(600 * time.Millisecond)
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusRequestTimeout)
				return
			}
			fmt.Fprintf(w, "%d", len(b))
		}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/late", "application/octet-stream", bytes.NewReader(make([]byte, 100<<10)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(100<<10) {
		t.Fatalf("late-reading handler: %d %s", resp.StatusCode, b)
	}
}
