package attest

import (
	"crypto/rand"

	"encoding/json"
	"errors"
	"golang.org/x/mod/sumdb/note"
	"os"
	"strings"
	"testing"
)

func TestExamplePolicyParses(t *testing.T) {
	p, err := LoadPolicy("testdata/trust-policy.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if p.NodeKeySet().Len() != 1 || p.ApproverKeySet().Len() != 3 || p.Approvers.Threshold != 2 || len(p.witnesses) != 2 || len(p.logs) != 1 {
		t.Fatalf("example policy read as %+v", p)
	}
}

func TestParsePolicyRejects(t *testing.T) {
	raw, err := os.ReadFile("testdata/trust-policy.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]any
	if err := json.Unmarshal(raw, &base); err != nil {
		t.Fatal(err)
	}
	other := KeyPolicyFor("x", testKey(t, "").Verifier())
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		msg  string
	}{
		{"version", func(m map[string]any) { m["version"] = 2 }, "version 2"},
		{"unknown field", func(m map[string]any) { m["trustEveryone"] = true }, "trustEveryone"},
		{"threshold above n", func(m map[string]any) { m["approvers"].(map[string]any)["threshold"] = 4 }, "threshold 4"},
		{"threshold zero", func(m map[string]any) { m["approvers"].(map[string]any)["threshold"] = 0 }, "threshold 0"},
		{"threshold without keys", func(m map[string]any) { m["approvers"] = map[string]any{"threshold": 1} }, "no approver keys"},
		{"keyid mismatch", func(m map[string]any) {
			m["nodeKeys"].([]any)[0].(map[string]any)["keyid"] = other.KeyID
		}, "does not match"},
		{"bad PEM", func(m map[string]any) { m["nodeKeys"].([]any)[0].(map[string]any)["publicKey"] = "nope" }, "nodeKeys[0]"},
		{"duplicate approver", func(m map[string]any) {
			ks := m["approvers"].(map[string]any)["keys"].([]any)
			m["approvers"].(map[string]any)["keys"] = append(ks, ks[0])
		}, "listed twice"},
		{"quorum above n", func(m map[string]any) { m["witnesses"].(map[string]any)["quorum"] = 3 }, "quorum 3"},
		{"bad witness key", func(m map[string]any) { m["witnesses"].(map[string]any)["keys"] = []string{"w+1+AA"} }, "witnesses.keys[0]"},
		{"bad log key", func(m map[string]any) { m["logs"].([]any)[0].(map[string]any)["key"] = "nope" }, "logs[0]"},
		{"empty origin", func(m map[string]any) { m["logs"].([]any)[0].(map[string]any)["origin"] = "" }, "empty origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(raw, &m)
			tc.edit(m)
			b, _ := json.Marshal(m)
			_, err := ParsePolicy(b)
			if !errors.Is(err, ErrBadPolicy) {
				t.Fatalf("err = %v, want ErrBadPolicy", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// TestNodesFormPolicy parses the policy shape agentix-store init writes
// (internal/node.OwnTrustPolicy).
func TestNodesFormPolicy(t *testing.T) {
	k := testKey(t, "")
	_, vkey, _ := note.GenerateKey(rand.Reader, "n1")
	pol := map[string]any{
		"version": 1,
		"logs":    []any{map[string]any{"origin": "n1", "key": vkey}},
		"nodes": []any{map[string]any{
			"name": "n1", "keys": []any{map[string]any{"id": k.KeyID(), "pem": string(k.PublicKeyPEM())}},
			"nix_keys": []string{"n1:AAAA"}, "log": "n1",
		}},
		"approvers": map[string]any{"threshold": 0, "keys": []any{}},
		"witnesses": map[string]any{"quorum": 0, "keys": []any{}},
	}
	b, _ := json.Marshal(pol)
	p, err := ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	if !p.NodeKeySet().Has(k.KeyID()) {
		t.Fatal("node key from nodes[] not trusted")
	}
	env := sign(t, PayloadType, proposalStatement(t, "x"), k)
	if _, err := VerifyEnvelope(env, p); err != nil {
		t.Fatal(err)
	}
	pol["nodes"].([]any)[0].(map[string]any)["log"] = "elsewhere"
	b, _ = json.Marshal(pol)
	if _, err := ParsePolicy(b); !errors.Is(err, ErrBadPolicy) {
		t.Fatalf("node naming an unknown log: %v", err)
	}
}
