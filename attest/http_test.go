package attest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	n := newTestNode(t)
	node := testKey(t, "")
	env := sign(t, PayloadType, proposalStatement(t, "http"), node)
	p, err := n.pub.PublishEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler("/api/v1/attestations", n.pub.Index, n.store.Blockstore()))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		n    int // records expected (for list queries), -1 for none
	}{
		{"/api/v1/attestations", 200, 1},
		{"/api/v1/attestations?predicateType=" + PredicateProposal, 200, 1},
		{"/api/v1/attestations?signer=" + node.KeyID(), 200, 1},
		{"/api/v1/attestations?predicateType=" + PredicateApply, 200, 0},
		{"/api/v1/attestations?limit=x", 400, -1},
		{"/api/v1/attestations?subject=nope", 400, -1},
		{"/api/v1/attestations/" + p.ID.String(), 200, -1},
		{"/api/v1/attestations/" + ID([]byte("x")).String(), 404, -1},
		{"/api/v1/attestations/zzz", 400, -1},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d (%s)", tc.path, resp.StatusCode, tc.code, body)
			continue
		}
		if tc.n >= 0 {
			var rs []Record
			if err := json.Unmarshal(body, &rs); err != nil || len(rs) != tc.n {
				t.Errorf("%s: %d records (%v), want %d", tc.path, len(rs), err, tc.n)
			}
		}
		if tc.path == "/api/v1/attestations/"+p.ID.String() && ID(body) != p.ID {
			t.Errorf("envelope served does not hash to its id")
		}
	}
}
