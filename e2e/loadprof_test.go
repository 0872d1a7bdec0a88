package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	agentixd "github.com/agentix/agentix-store/internal/daemon"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestLoadProfile (LOAD_PROFILE=FILE only) runs the publishers of
// TestLoadPublishers against a daemon in this process and writes its heap
// profile to FILE at the end of the load: where the daemon's memory is.
func TestLoadProfile(t *testing.T) {
	out := os.Getenv("LOAD_PROFILE")
	if out == "" {
		t.Skip("LOAD_PROFILE=FILE writes the heap profile of an in-process daemon under load")
	}
	dur := 20 * time.Second
	if s := os.Getenv("LOAD_DURATION"); s != "" {
		dur, _ = time.ParseDuration(s)
	}
	dir := filepath.Join(t.TempDir(), "node")
	n, err := node.Open(dir, node.OpenOptions{Init: true, Name: "prof"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	signer, err := attest.LoadSigner(filepath.Join(dir, node.AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, node.TokenFile))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agentixd.Serve(ctx, n, l, agentixd.Options{}) }()
	url := "http://" + l.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	stopAt := time.Now().Add(dur)
	var wg sync.WaitGroup
	for p := 0; p < 256; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stopAt); i++ {
				body := []byte(fmt.Sprintf("patch %d/%d", p, i))
				sum := sha256.Sum256(body)
				m, _ := mh.Encode(sum[:], mh.SHA2_256)
				c := cid.NewCidV1(cid.Raw, m)
				rd := attest.Subject(c, sum[:], "proposals/load.patch")
				_, payload, _ := attest.NewStatement(attest.PredicateApproval, []attest.ResourceDescriptor{rd},
					attest.ApprovalPredicate{Patch: attest.PatchRef{CID: c.String(), SHA256: rd.SHA256()}})
				env, _ := attest.SignEnvelope(context.Background(), attest.PayloadType, payload, signer)
				envBytes, _ := attest.MarshalEnvelope(env)
				req, _ := http.NewRequest("POST", url+"/api/v1/attestations", bytes.NewReader(envBytes))
				req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}(p)
	}
	// The heap at its fullest is what the profile should show: take it
	// just before the load ends.
	time.Sleep(dur - 2*time.Second)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	wg.Wait()
	cancel()
	<-done
}
