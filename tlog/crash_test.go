package tlog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

const (
	crashEnvDir   = "AGENTIX_LOG_CRASH_DIR"
	crashEnvKey   = "AGENTIX_LOG_CRASH_KEY"
	crashEnvRound = "AGENTIX_LOG_CRASH_ROUND"
)

// TestCrashHelper is not a test: it is the child process of TestCrashSafety.
// It appends from 16 concurrent writers until killed, printing
// "ACK <index> <hex entry>" for each acknowledged append.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("child process of TestCrashSafety only")
	}
	s, err := note.NewSigner(os.Getenv(crashEnvKey))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	db := openDB(t, dir)
	l, err := Open(db, Options{Signer: s, MaxBatch: 64})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	round := os.Getenv(crashEnvRound)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				e := []byte(fmt.Sprintf("round %s writer %d entry %d", round, w, i))
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "ACK %d %x\n", idx, e)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashSafety kills an appending child process with SIGKILL at random
// moments and checks, after every restart, that every acknowledged index
// holds its entry, that the new checkpoint is consistent with every earlier
// one, and that appends continue.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test takes ~15s")
	}
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/crash")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	h := rfc6962.DefaultHasher

	acked := map[uint64][]byte{}
	type cpRec struct {
		size uint64
		hash []byte
	}
	var cps []cpRec
	const rounds = 25
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvKey+"="+skey, crashEnvRound+"="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill at a random moment once appends are flowing.
		killAfter := time.Duration(20+mrand.IntN(300)) * time.Millisecond
		var timer <-chan time.Time
		n := 0
		for line := range lines {
			if timer == nil {
				timer = time.After(killAfter)
			}
			select {
			case <-timer:
				cmd.Process.Signal(syscall.SIGKILL)
				timer = make(chan time.Time) // never again
			default:
			}
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "ACK" {
				continue // a line cut by the kill was never acknowledged to anyone
			}
			idx, err1 := strconv.ParseUint(f[1], 10, 64)
			e, err2 := hex.DecodeString(f[2])
			if err1 != nil || err2 != nil {
				continue
			}
			if prev, ok := acked[idx]; ok && !bytes.Equal(prev, e) {
				t.Fatalf("round %d: index %d acknowledged twice: %q and %q", round, idx, prev, e)
			}
			acked[idx] = e
			n++
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended without being killed: %v\n%s", round, err, stderr.String())
		}
		if n == 0 {
			t.Fatalf("round %d: child acknowledged nothing\n%s", round, stderr.String())
		}

		// Restart and check.
		db := openDB(t, dir)
		l, err := Open(db, Options{Signer: signer})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		cp, _ := l.Checkpoint(ctx)
		v, err := VerifyCheckpoint(cp.Note, verifier)
		if err != nil {
			t.Fatal(err)
		}
		for idx, e := range acked {
			if idx >= v.Size {
				t.Fatalf("round %d: acknowledged index %d beyond checkpoint size %d", round, idx, v.Size)
			}
			got, err := l.Entry(ctx, idx)
			if err != nil || !bytes.Equal(got, e) {
				t.Fatalf("round %d: index %d holds %q (%v), acknowledged %q", round, idx, got, err, e)
			}
		}
		for _, old := range cps {
			if old.size > v.Size {
				t.Fatalf("round %d: checkpoint regressed from %d to %d", round, old.size, v.Size)
			}
			p, err := l.ConsistencyProof(ctx, old.size, v.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(h, old.size, v.Size, p, old.hash, v.Hash); err != nil {
				t.Fatalf("round %d: checkpoint %d inconsistent with earlier %d: %v", round, v.Size, old.size, err)
			}
		}
		// Spot-check inclusion of a few acknowledged entries.
		k := 0
		for idx, e := range acked {
			if k++; k > 20 {
				break
			}
			p, err := l.InclusionProof(ctx, idx, v.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(h, idx, v.Size, h.HashLeaf(e), p, v.Hash); err != nil {
				t.Fatalf("round %d: inclusion of %d: %v", round, idx, err)
			}
			// The leaf-hash index (maybe cut short by the kill) finds it.
			if got, _, err := l.InclusionProofByLeafHash(ctx, h.HashLeaf(e), v.Size); err != nil || got != idx {
				t.Fatalf("round %d: lookup by leaf hash of %d = %d, %v", round, idx, got, err)
			}
		}
		if round == rounds-1 {
			t.Logf("%d entries, %d indexed by runs", v.Size, l.indexed.Load())
		}
		cps = append(cps, cpRec{v.Size, v.Hash})
		// Appends continue.
		e := []byte(fmt.Sprintf("after restart %d", round))
		idx, err := l.Append(ctx, e)
		if err != nil || idx != v.Size {
			t.Fatalf("round %d: append after restart: %d, %v (size was %d)", round, idx, err, v.Size)
		}
		acked[idx] = e
		cp, _ = l.Checkpoint(ctx)
		cps = append(cps, cpRec{cp.Size, cp.Hash})
		l.Close()
		db.Close()
	}
	t.Logf("%d rounds, %d acknowledged entries, final size %d", rounds, len(acked), cps[len(cps)-1].size)
}
