package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentix/agentix-store/internal/kv"
	tlog "github.com/agentix/agentix-store/log"
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
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        writers * 2,
		MaxIdleConnsPerHost: writers * 2,
	}, Timeout: 60 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var mu sync.Mutex
	var lats []time.Duration
	var errs atomic.Int64
	var seq atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			e := make([]byte, size)
			rand.Read(e)
			for ctx.Err() == nil {
				// Unique entries: Tessera deduplicates identical ones.
				binary.BigEndian.PutUint64(e, seq.Add(1))
				t0 := time.Now()
				resp, err := client.Post(target, "application/octet-stream", bytes.NewReader(e))
				if err != nil {
					errs.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
					continue
				}
				if _, err := strconv.ParseUint(string(bytes.TrimSpace(body)), 10, 64); err != nil {
					errs.Add(1)
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
	fmt.Printf("system=%s writers=%d entry_bytes=%d duration=%.1fs appends=%d errors=%d entries/s=%.0f p50_ms=%.2f p99_ms=%.2f\n",
		label, writers, size, elapsed.Seconds(), len(lats), errs.Load(), float64(len(lats))/elapsed.Seconds(), pct(0.5), pct(0.99))
}
