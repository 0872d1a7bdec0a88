package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/attest"
)

// TestStateLoadStrict: an auditor state file with a repeated member name is
// refused naming it (encoding/json let the last repeat win, so a second
// "latest" could move the remembered checkpoint), and names match exactly:
// "Latest" is not latest.
func TestStateLoadStrict(t *testing.T) {
	const origin = "example.org/log"
	acc := `{"size":2,"root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","note":"n","accepted":"2026-12-01T09:00:00Z"}`
	big := `{"size":9,"root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","note":"n","accepted":"2026-12-01T09:00:00Z"}`
	for _, c := range []struct {
		name, json string
		key        string // the member the error must name; "" when accepted
	}{
		{"plain", `{"origin":"` + origin + `","latest":` + acc + `,"accepted":[` + acc + `]}`, ""},
		{"duplicate latest", `{"origin":"` + origin + `","latest":` + big + `,"latest":` + acc + `,"accepted":[` + acc + `]}`, "latest"},
		{"duplicate size", `{"origin":"` + origin + `","latest":{"size":9,` + acc[1:] + `,"accepted":[` + acc + `]}`, "size"},
		{"duplicate origin", `{"origin":"other","origin":"` + origin + `","accepted":[]}`, "origin"},
		{"case-variant Latest is not latest", `{"origin":"` + origin + `","latest":` + acc + `,"Latest":` + big + `,"accepted":[` + acc + `]}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := OpenState(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.path(origin), []byte(c.json), 0o600); err != nil {
				t.Fatal(err)
			}
			ls, err := s.Load(origin)
			if c.key != "" {
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.key)) {
					t.Fatalf("err = %v, want an error naming %q", err, c.key)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ls.Latest == nil || ls.Latest.Size != 2 {
				t.Fatalf("latest = %+v, want size 2", ls.Latest)
			}
		})
	}
}

// TestNodeJSONStrict: a node's JSON answer with a repeated member name (an
// attestation record listing two predicate types) is not taken, and the
// error names the member; encoding/json took the last one.
func TestNodeJSONStrict(t *testing.T) {
	body := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	na := &nodeAudit{ctx: context.Background(), base: srv.URL, o: NodeOptions{HTTP: srv.Client()}}
	for _, c := range []struct{ name, json, key string }{
		{"plain", `[{"id":"x","logIndex":1,"predicateType":"` + attest.PredicateApply + `"}]`, ""},
		{"duplicate predicateType", `[{"id":"x","predicateType":"` + attest.PredicateApply + `","predicateType":"` + attest.PredicateRunningConfig + `"}]`, "predicateType"},
		{"duplicate logIndex", `[{"id":"x","logIndex":1,"logIndex":7}]`, "logIndex"},
		{"duplicate subject digest", `[{"id":"x","subjects":[{"digest":{"sha256":"a","sha256":"b"}}]}]`, "sha256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body = c.json
			var all []attest.Record
			err := na.getJSON("/api/v1/attestations", &all)
			if c.key == "" {
				if err != nil || len(all) != 1 || all[0].PredicateType != attest.PredicateApply {
					t.Fatalf("records %+v, err %v", all, err)
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.key)) {
				t.Fatalf("err = %v, want ErrUnavailable naming %q", err, c.key)
			}
		})
	}
}
