package attest

import (
	"os"
	"testing"
)

// FuzzParsePolicy: a trust policy file is outside input for an auditor.
// Parsing never panics, and a policy that parses marshals and parses again.
func FuzzParsePolicy(f *testing.F) {
	if b, err := os.ReadFile("testdata/trust-policy.example.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"logs":[]}`))
	f.Add([]byte(`{"version":1,"approvers":{"threshold":3,"keys":[]}}`))
	f.Add([]byte(`{"version":1,"witnesses":{"quorum":1,"keys":["w+00000000+AQ=="]}}`))
	// Repeated and case-variant member names (all refused).
	f.Add([]byte(`{"version":1,"approvers":{"threshold":1,"threshold":0,"keys":[]}}`))
	f.Add([]byte(`{"version":1,"approvers":{"Threshold":1,"threshold":0,"keys":[]}}`))
	f.Add([]byte(`{"version":1,"Version":2,"boundary":{"a":1,"a":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("parsed policy does not marshal: %v", err)
		}
		if _, err := ParsePolicy(out); err != nil {
			t.Fatalf("marshalled policy does not parse again: %v\n%s", err, out)
		}
	})
}
