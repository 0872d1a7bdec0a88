package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/tlog"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	target := flag.String("url", "", "append endpoint to POST entries to")
	self := flag.Bool("self", false, "serve our own log in a temp dir and drive it over HTTP")
	writers := flag.Int("writers", 1, "concurrent writers")
	duration := flag.Duration("duration", 10*time.Second, "how long to drive the load")
	size := flag.Int("size", 512, "entry size in bytes")
	label := flag.String("label", "", "system name for the report line")
	genkey := flag.String("genkey", "", "print a new note signing key with this name and exit")
	wait := flag.String("wait", "", "wait until this URL answers, then exit")
	serve := flag.String("serve", "", "serve our own log on this address until killed (POST /add, /log/)")
	flag.Parse()

	switch {
	case *genkey != "":
		skey, _, err := note.GenerateKey(rand.Reader, *genkey)
		check(err)
		fmt.Println(skey)
		return
	case *wait != "":
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := http.Get(*wait); err == nil {
				resp.Body.Close()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Fprintln(os.Stderr, "loadgen: timed out waiting for", *wait)
		os.Exit(1)
	}
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		check(err)
		_, stop := serveSelf(ln)
		defer stop()
		select {}
	}
	if *self {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		check(err)
		u, stop := serveSelf(ln)
		defer stop()
		*target = u
		if *label == "" {
			*label = "agentix-store"
		}
	}
	if *target == "" {
		fmt.Fprintln(os.Stderr, "loadgen: need -url or -self")
		os.Exit(2)
	}
	run(*target, *label, *writers, *size, *duration)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// serveSelf opens our log in a temporary directory and serves POST /add.
func serveSelf(ln net.Listener) (string, func()) {
	dir, err := os.MkdirTemp("", "loadgen-agentix-")
	check(err)
	db, err := kv.Open(dir, kv.Options{})
	check(err)
	skey, _, err := note.GenerateKey(rand.Reader, "loadgen.example/log")
	check(err)
	s, err := note.NewSigner(skey)
	check(err)
	l, err := tlog.Open(db, tlog.Options{Signer: s})
	check(err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, tlog.MaxEntrySize+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		idx, err := l.Append(r.Context(), b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d", idx)
	})
	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/add", func() {
		srv.Close()
		l.Close()
		db.Close()
		os.RemoveAll(dir)
	}
}

func run(target, label string, writers, size int, duration time.Duration) {
	u, err := url.Parse(target)
	check(err)
	if u.Scheme != "http" {
		check(fmt.Errorf("only http:// targets: %s", target))
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var mu sync.Mutex
	var lats []time.Duration
	var errs atomic.Int64
	var firstErr atomic.Pointer[error] // atomic.Value would panic on a second error of another type
	var seq atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			w := &writer{host: u.Host, req: request(u, size)}
			defer w.close()
			e := w.req[len(w.req)-size:]
			rand.Read(e)
			for ctx.Err() == nil {
				// Unique entries: Tessera deduplicates identical ones.
				binary.BigEndian.PutUint64(e, seq.Add(1))
				t0 := time.Now()
				if err := w.post(); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(p*float64(len(lats)-1))].Microseconds()) / 1000
	}
	if err := firstErr.Load(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", *err)
	}
	fmt.Printf("system=%s writers=%d entry_bytes=%d duration=%.1fs appends=%d errors=%d entries/s=%.0f p50_ms=%.2f p99_ms=%.2f\n",
		label, writers, size, elapsed.Seconds(), len(lats), errs.Load(), float64(len(lats))/elapsed.Seconds(), pct(0.5), pct(0.99))
}

// request returns a POST of a size-byte body to u, headers included, for
// writer to send as is (the body is the last size bytes).
func request(u *url.URL, size int) []byte {
	path := u.RequestURI()
	h := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, u.Host, size)
	return append([]byte(h), make([]byte, size)...)
}

// writer is one load-generating client: a single keep-alive HTTP/1.1
// connection on which it sends a request and reads the whole response
// before the next, as net/http's client would, without the transport's
// per-request goroutine hand-offs (the load generator shares the machine
// with the server under test, so its own CPU cost matters). Responses are
// parsed by net/http's ReadResponse; any failure drops the connection.
type writer struct {
	host string
	req  []byte
	conn net.Conn
	br   *bufio.Reader
	body bytes.Buffer
}

func (w *writer) post() error {
	if w.conn == nil {
		c, err := net.Dial("tcp", w.host)
		if err != nil {
			return err
		}
		w.conn, w.br = c, bufio.NewReaderSize(c, 4096)
	}
	w.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := w.conn.Write(w.req); err != nil {
		w.close()
		return err
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		w.close()
		return err
	}
	w.body.Reset()
	_, err = w.body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		w.close()
		if err != nil {
			return err
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(w.body.Bytes()))
	}
	if _, err := strconv.ParseUint(string(bytes.TrimSpace(w.body.Bytes())), 10, 64); err != nil {
		return fmt.Errorf("answer %q is not an index", w.body.Bytes())
	}
	return nil
}

func (w *writer) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.br = nil, nil
	}
}
