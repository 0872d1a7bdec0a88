package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Entries appended through the CLI are served by the daemon under /log/ as
// C2SP tlog-tiles, with a checkpoint signed by the node's log key.
func TestLogAppendThenServe(t *testing.T) {
	dir := initDir(t)
	entries := []string{"first entry", "second entry", "third entry"}
	for i, e := range entries {
		var res struct{ Index uint64 }
		if err := json.Unmarshal(ok(t, dir, []byte(e), "log", "append", "--json", "-"), &res); err != nil || res.Index != uint64(i) {
			t.Fatalf("append %d: %v index %d", i, err, res.Index)
		}
	}
	vkey, err := os.ReadFile(filepath.Join(dir, "keys", "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	base := startDaemon(t, dir)
	get := func(p string) []byte {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
		}
		return b
	}
	cpRaw := get("/log/checkpoint")
	n, err := note.Open(cpRaw, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify with keys/log.pub: %v\n%s", err, cpRaw)
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Size != 3 {
		t.Fatalf("checkpoint: %v size %d", err, cp.Size)
	}
	bundle := get("/log/tile/entries/000.p/3")
	var want []byte
	for _, e := range entries {
		want = append(want, byte(len(e)>>8), byte(len(e)))
		want = append(want, e...)
	}
	if !bytes.Equal(bundle, want) {
		t.Fatalf("entry bundle %q, want %q", bundle, want)
	}
}
