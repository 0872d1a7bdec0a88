package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/cli"
	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
	"github.com/ipfs/go-cid"
)

const sampleWS = "../../testdata/agentix/workspace-basic"

// copyWorkspace copies the sample Agentix workspace into a temporary
// directory.
func copyWorkspace(t *testing.T) string {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "ws")
	pd := filepath.Join(ws, ".agentix", "proposals")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	cp := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(sampleWS, "proposals"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		cp(filepath.Join(sampleWS, "proposals", e.Name()), filepath.Join(pd, e.Name()))
	}
	cp(filepath.Join(sampleWS, "audit.jsonl"), filepath.Join(ws, ".agentix", "audit.jsonl"))
	return ws
}

// The node operations answer the same through the daemon's API as
// in-process, and their errors keep their meaning (errors.Is, a usage
// error stays one).
func TestOpsClientMatchesLocal(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	ctx := context.Background()
	local, client := Local{N: n}, &Client{Base: srv.URL, Token: tok}
	ws := copyWorkspace(t)

	// Ingest once in-process, then again through the client: the second
	// finds nothing new, and both report the same snapshot.
	first, err := local.Ingest(ctx, IngestRequest{Workspace: ws, Name: "w"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.Ingest(ctx, IngestRequest{Workspace: ws, Name: "w"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Unchanged || again.Snapshot != first.Snapshot || again.Boundary == nil || again.Boundary.Passed != first.Boundary.Passed {
		t.Fatalf("ingest through the client: %+v, in-process %+v", again, first)
	}

	missing, _ := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	sentinels := []error{store.ErrNotFound, closure.ErrNotFound, tlog.ErrNotFound, audit.ErrNotAppendOnly}
	type call struct {
		name string
		do   func(b Backend) (any, error)
	}
	calls := []call{
		{"checkpoint", func(b Backend) (any, error) { return b.Checkpoint(ctx) }},
		{"entries", func(b Backend) (any, error) { return b.LogEntries(ctx, 0, -1) }},
		{"entries 1..2", func(b Backend) (any, error) { return b.LogEntries(ctx, 1, 2) }},
		{"inclusion", func(b Backend) (any, error) { return b.Inclusion(ctx, InclusionRequest{Index: 1}) }},
		{"inclusion missing", func(b Backend) (any, error) { return b.Inclusion(ctx, InclusionRequest{Index: 999}) }},
		{"consistency", func(b Backend) (any, error) { return b.Consistency(ctx, 1, 2) }},
		{"consistency reversed", func(b Backend) (any, error) { return b.Consistency(ctx, 2, 1) }},
		{"attestations", func(b Backend) (any, error) { return b.Attestations(ctx, attest.Query{}) }},
		{"attestations by type", func(b Backend) (any, error) {
			return b.Attestations(ctx, attest.Query{PredicateType: attest.PredicateAuditLog, Limit: 1})
		}},
		{"closures", func(b Backend) (any, error) { return b.Closures(ctx) }},
		{"closure verify missing", func(b Backend) (any, error) { return b.ClosureVerify(ctx, missing) }},
		{"closure ls missing", func(b Backend) (any, error) { return b.ClosureEntries(ctx, missing) }},
		{"closure attest missing", func(b Backend) (any, error) { return b.AttestRunning(ctx, missing, nil, RunningRequest{}) }},
		{"closure attest usage", func(b Backend) (any, error) {
			return b.AttestRunning(ctx, missing, nil, RunningRequest{Attr: "x"})
		}},
		{"bundle missing", func(b Backend) (any, error) { return b.Bundle(ctx, missing, false) }},
		{"ingest no workspace", func(b Backend) (any, error) { return b.Ingest(ctx, IngestRequest{Workspace: t.TempDir()}, nil) }},
		{"ingest bad policy", func(b Backend) (any, error) {
			return b.Ingest(ctx, IngestRequest{Workspace: ws, Policy: []byte(`{"x":`)}, nil)
		}},
	}
	for _, c := range calls {
		lv, lerr := c.do(local)
		cv, cerr := c.do(client)
		if (lerr == nil) != (cerr == nil) {
			t.Errorf("%s: in-process error %v, through the client %v", c.name, lerr, cerr)
			continue
		}
		if lerr != nil {
			for _, s := range sentinels {
				if errors.Is(lerr, s) != errors.Is(cerr, s) {
					t.Errorf("%s: errors.Is(%v): in-process %v (%v), client %v (%v)", c.name, s, errors.Is(lerr, s), lerr, errors.Is(cerr, s), cerr)
				}
			}
			var lu, cu *cli.UsageError
			if errors.As(lerr, &lu) != errors.As(cerr, &cu) {
				t.Errorf("%s: usage error in-process %v (%v), through the client %v (%v)", c.name, lu != nil, lerr, cu != nil, cerr)
			}
			continue
		}
		if !reflect.DeepEqual(lv, cv) {
			t.Errorf("%s: in-process %+v, through the client %+v", c.name, lv, cv)
		}
	}

	// A tampered audit log: the client gets the report with the error,
	// which matches audit.ErrNotAppendOnly (409 on the wire).
	lines, _ := os.ReadFile(filepath.Join(ws, ".agentix", "audit.jsonl"))
	cut := bytes.SplitAfter(lines, []byte("\n"))
	if err := os.WriteFile(filepath.Join(ws, ".agentix", "audit.jsonl"), bytes.Join(cut[:len(cut)/2], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := client.Ingest(ctx, IngestRequest{Workspace: ws, Name: "w"}, nil)
	var e *Error
	if !errors.Is(err, audit.ErrNotAppendOnly) || !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("tampered ingest through the client: %v, want ErrNotAppendOnly with 409", err)
	}
	if r == nil || r.Evidence == nil || r.Evidence.Kind != audit.TamperTruncated {
		t.Fatalf("tampered ingest through the client: report %+v lacks its evidence", r)
	}
}

// A long operation's answer streams progress lines, then its result; an
// error after progress keeps its status and kind.
func TestStreamProgress(t *testing.T) {
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &streamer{w: w}
		for i := int64(0); i <= 4; i++ {
			st.last = st.last.Add(-1 << 40) // no throttling in the test
			st.progress(i*25, 100)
		}
		if fail {
			st.finish((*ClosureImported)(nil), audit.ErrNotAppendOnly)
			return
		}
		st.finish(&ClosureImported{Closure: "bafy", Root: "/nix/store/x", Paths: 3}, nil)
	}))
	defer srv.Close()
	c := &Client{Base: srv.URL, Token: "t"}
	var seen []int64
	res, err := c.ClosureImport(context.Background(), ClosureImportRequest{StorePath: "/nix/store/x"}, func(done, total int64) {
		if total != 100 {
			t.Errorf("total %d, want 100", total)
		}
		seen = append(seen, done)
	})
	if err != nil || res.Paths != 3 || res.Root != "/nix/store/x" {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if !reflect.DeepEqual(seen, []int64{0, 25, 50, 75, 100}) {
		t.Fatalf("progress seen: %v", seen)
	}
	fail = true
	_, err = c.ClosureImport(context.Background(), ClosureImportRequest{StorePath: "/nix/store/x"}, nil)
	var e *Error
	if !errors.Is(err, audit.ErrNotAppendOnly) || !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("failed import: %v, want ErrNotAppendOnly (409)", err)
	}
}

// Request bodies of the new write routes are strict JSON and need the
// token.
func TestOpsRequestsStrict(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	ws := copyWorkspace(t)
	for _, c := range []struct {
		path, body string
		auth       bool
		want       int
	}{
		{"/api/v1/ingest", `{"workspace":"` + ws + `"}`, false, http.StatusUnauthorized},
		{"/api/v1/genesis", `{"workspace":"` + ws + `"}`, false, http.StatusUnauthorized},
		{"/api/v1/closures/import", `{"storePath":"/nix/store/x"}`, false, http.StatusUnauthorized},
		{"/api/v1/ingest", `{"workspace":"` + ws + `","workspace":"/elsewhere"}`, true, http.StatusBadRequest},
		{"/api/v1/ingest", `{"Workspace":"` + ws + `"}`, true, http.StatusBadRequest},
		{"/api/v1/ingest", `{"workspace":"` + ws + `","extra":1}`, true, http.StatusBadRequest},
		{"/api/v1/ingest", `{"workspace":`, true, http.StatusBadRequest},
		{"/api/v1/closures/import", `{"storePath":""}`, true, http.StatusBadRequest},
		{"/api/v1/ingest", `{"workspace":"` + ws + `"}`, true, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+c.path, strings.NewReader(c.body))
		if c.auth {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // a streamed answer ends with the result
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("POST %s %s (auth %v): %d, want %d", c.path, c.body, c.auth, resp.StatusCode, c.want)
		}
	}
	// Only the last, valid request ingested anything.
	recs, err := Attestations(n, attest.Query{PredicateType: attest.PredicateAuditLog})
	if err != nil || len(recs) != 1 {
		t.Fatalf("audit-log attestations after the requests: %d, %v; want 1", len(recs), err)
	}
}

// TestIngestStreamsProgress: an ingest through the daemon streams how far
// it read, ending at the bytes of the log's complete lines.
func TestIngestStreamsProgress(t *testing.T) {
	n, tok := newNode(t)
	srv := httptest.NewServer(Handler(n, tok, Limits{}))
	defer srv.Close()
	ws := copyWorkspace(t)
	var calls int
	var last [2]int64
	res, err := (&Client{Base: srv.URL, Token: tok}).Ingest(context.Background(), IngestRequest{Workspace: ws, Name: "w"}, func(done, total int64) {
		calls++
		last = [2]int64{done, total}
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last[0] != res.Size || last[1] != res.Size {
		t.Fatalf("%d progress lines, last %v; want them to end at the %d bytes ingested", calls, last, res.Size)
	}
}
