package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestLoadPublishers: 256 concurrent publishers sign approval/v1
// attestations and POST them to one daemon for LOAD_DURATION (default 5 s;
// `make loadtest` runs 60 s). Every acknowledged attestation must then be in
// the log, at the index it was acknowledged with, with its exact bytes. The
// sustained rate, p99 latency and the daemon's peak RSS are logged (figures,
// not assertions: targets live in benchmarks and reports; LOAD_RSS_MAX_MB
// makes the peak RSS one).
func TestLoadPublishers(t *testing.T) {
	dur := 5 * time.Second
	if s := os.Getenv("LOAD_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("LOAD_DURATION=%q: %v", s, err)
		}
		dur = d
	}
	const publishers = 256
	dir := filepath.Join(t.TempDir(), "node")
	store(t, dir, "init", "--name", "load")
	signer, err := attest.LoadSigner(filepath.Join(dir, "keys", "attest.key"))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "token"))
	d := start(t, dir)

	type ack struct {
		id    string
		index uint64
		env   []byte
	}
	var (
		mu      sync.Mutex
		acks    []ack
		lats    []time.Duration
		failed  atomic.Int64
		why     = &failures{n: map[string]int{}}
		stopAt  = time.Now().Add(dur)
		wg      sync.WaitGroup
		client  = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: publishers}}
		peakRSS atomic.Int64
		// The peak's parts: anonymous memory (Go heap, stacks, badger's
		// arenas) and mapped files (badger's logs and tables).
		peakAnon, peakFile atomic.Int64
	)
	stopRSS := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopRSS:
				return
			case <-time.After(200 * time.Millisecond):
			}
			st := procStatus(d.cmd.Process.Pid)
			if kb := st["VmHWM"]; kb > peakRSS.Load() {
				peakRSS.Store(kb)
			}
			if kb := st["RssAnon"]; kb > peakAnon.Load() {
				peakAnon.Store(kb)
			}
			if kb := st["RssFile"] + st["RssShmem"]; kb > peakFile.Load() {
				peakFile.Store(kb)
			}
		}
	}()
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stopAt); i++ {
				body := []byte(fmt.Sprintf("patch %d/%d", p, i))
				sum := sha256.Sum256(body)
				m, _ := mh.Encode(sum[:], mh.SHA2_256)
				c := cid.NewCidV1(cid.Raw, m)
				rd := attest.Subject(c, sum[:], "proposals/load.patch")
				_, payload, err := attest.NewStatement(attest.PredicateApproval, []attest.ResourceDescriptor{rd},
					attest.ApprovalPredicate{Patch: attest.PatchRef{CID: c.String(), SHA256: rd.SHA256()}})
				if err != nil {
					t.Error(err)
					return
				}
				env, err := attest.SignEnvelope(context.Background(), attest.PayloadType, payload, signer)
				if err != nil {
					t.Error(err)
					return
				}
				envBytes, _ := attest.MarshalEnvelope(env)
				req, _ := http.NewRequest("POST", d.url+"/api/v1/attestations", bytes.NewReader(envBytes))
				req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					why.note("transport: " + errClass(err))
					continue
				}
				var pr struct {
					ID       string `json:"id"`
					LogIndex uint64 `json:"log_index"`
				}
				err = json.NewDecoder(resp.Body).Decode(&pr)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat := time.Since(t0)
				if resp.StatusCode != 200 || err != nil {
					failed.Add(1)
					why.note(fmt.Sprintf("HTTP %d", resp.StatusCode))
					continue
				}
				mu.Lock()
				acks = append(acks, ack{pr.ID, pr.LogIndex, envBytes})
				lats = append(lats, lat)
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	close(stopRSS)
	if len(acks) == 0 {
		t.Fatal("no publish acknowledged")
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if f := why.String(); f != "" {
		t.Logf("failures by kind: %s", f)
	}
	t.Logf("load: %d publishers, %v: %d acknowledged (%.0f publishes/s), %d failed, latency p50 %v p99 %v, daemon peak RSS %d MB (peak anonymous %d MB, peak mapped files %d MB)",
		publishers, dur, len(acks), float64(len(acks))/dur.Seconds(), failed.Load(),
		lats[len(lats)/2].Round(time.Microsecond), lats[len(lats)*99/100].Round(time.Microsecond), peakRSS.Load()/1024, peakAnon.Load()/1024, peakFile.Load()/1024)

	if s := os.Getenv("LOAD_RSS_MAX_MB"); s != "" {
		max, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("LOAD_RSS_MAX_MB=%q: %v", s, err)
		}
		if peakRSS.Load() > max*1024 {
			t.Errorf("daemon peak RSS %d MB over LOAD_RSS_MAX_MB=%d", peakRSS.Load()/1024, max)
		}
	}
	if m, err := http.Get(d.url + "/metrics"); err == nil {
		b, _ := io.ReadAll(m.Body)
		m.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			for _, name := range []string{"go_memstats_heap_inuse_bytes ", "go_memstats_heap_sys_bytes ", "process_resident_memory_bytes "} {
				if strings.HasPrefix(line, name) {
					t.Logf("daemon after the load: %s", line)
				}
			}
		}
	}
	// Every acknowledged attestation is in the log at its index, byte for
	// byte (read back from the daemon's tlog-tiles entry bundles).
	d.stop(t)
	ents := store(t, dir, "log", "entries", "--json")
	var entries []struct {
		Index uint64 `json:"index"`
		Entry []byte `json:"entry"`
	}
	if err := json.Unmarshal(ents, &entries); err != nil {
		t.Fatalf("log entries --json: %v", err)
	}
	byIndex := map[uint64][]byte{}
	for _, e := range entries {
		byIndex[e.Index] = e.Entry
	}
	for _, a := range acks {
		got, ok := byIndex[a.index]
		if !ok {
			t.Fatalf("acknowledged attestation %s (index %d) is not in the log of %d entries", a.id, a.index, len(entries))
		}
		if !bytes.Equal(got, a.env) {
			t.Fatalf("log entry %d does not hold attestation %s", a.index, a.id)
		}
	}
}

// TestIdleRSS starts the daemon on a fresh data directory and reports its
// resident set after IDLE_WAIT (default 5 s) with no requests (`make
// idle-rss`). IDLE_RSS_MAX_MB, when set, makes it a check.
func TestIdleRSS(t *testing.T) {
	wait := 5 * time.Second
	if s := os.Getenv("IDLE_WAIT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("IDLE_WAIT=%q: %v", s, err)
		}
		wait = d
	}
	dir := filepath.Join(t.TempDir(), "node")
	store(t, dir, "init", "--name", "idle")
	d := start(t, dir)
	time.Sleep(wait)
	st := procStatus(d.cmd.Process.Pid)
	if len(st) == 0 {
		t.Fatal("daemon exited")
	}
	t.Logf("idle daemon after %v: VmRSS %d kB (%d MB), VmHWM %d kB, RssAnon %d kB, RssFile %d kB",
		wait, st["VmRSS"], st["VmRSS"]/1024, st["VmHWM"], st["RssAnon"], st["RssFile"])
	if s := os.Getenv("IDLE_RSS_MAX_MB"); s != "" {
		max, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("IDLE_RSS_MAX_MB=%q: %v", s, err)
		}
		if st["VmRSS"] > max*1024 {
			t.Fatalf("idle VmRSS %d kB over %d MB", st["VmRSS"], max)
		}
	}
}

// procStatus reads the kB fields of /proc/PID/status (VmRSS, VmHWM,
// RssAnon, RssFile, ...); empty when the process is gone.
func procStatus(pid int) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// failures counts failed publishes by kind.
type failures struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *failures) note(kind string) {
	f.mu.Lock()
	f.n[kind]++
	f.mu.Unlock()
}

func (f *failures) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for k, v := range f.n {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// errClass is an error without its varying details (addresses, ports).
func errClass(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
