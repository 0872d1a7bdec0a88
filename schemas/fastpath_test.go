package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const (
	vCID  = "bafkreihqmwvbjccvv4vcmupxtvfj4cimwofsc3on677bixjteuhpvtuze4"
	vQm   = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
	vSHA  = "e28f823034380c8c4709e032a4ff9d2c6965b3939cc91900f4b483bbfe54153d"
	vPath = "/nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib"
)

// validSamples are well-formed predicates of each type, as this module
// writes them (they must take the fast path).
func validSamples() map[string][]string {
	pr := `{"cid":"` + vCID + `","sha256":"` + vSHA + `","path":".agentix/proposals/p.patch"}`
	al := `{"snapshot":"` + vCID + `","line":3}`
	return map[string][]string{
		PredicateProposal: {
			`{"workspace":"w","patch":` + pr + `,"auditLine":` + al + `,"action":"controller_run","mode":"execute","goal":"g","sourceModified":false}`,
			`{"workspace":"w","patch":{"cid":"` + vQm + `","sha256":"` + vSHA + `"},"auditLine":` + al + `,"action":"worktree_run","sourceModified":false}`,
		},
		PredicateApproval: {`{"patch":` + pr + `,"proposal":"` + vCID + `","comment":"ok"}`, `{"patch":` + pr + `}`},
		PredicateApply: {
			`{"workspace":"w","patch":` + pr + `,"singleOperator":true,"auditLine":` + al + `}`,
			`{"workspace":"w","patch":` + pr + `,"approval":"` + vCID + `","auditLine":` + al + `}`,
		},
		PredicateAuditLog: {
			`{"workspace":"w","snapshot":{"cid":"` + vCID + `","size":7,"root":"` + vSHA + `"},"boundary":{"policy":"` + vSHA + `","passed":false,"singleOperator":true,"violations":[{"line":3,"rule":"1","message":"m"}]},"time":"2026-11-25T16:58:34Z"}`,
			`{"workspace":"w","snapshot":{"cid":"` + vCID + `","size":0,"root":"` + vSHA + `"},"boundary":{"passed":true,"violations":[]}}`,
		},
		PredicateRunningConfig: {
			`{"closure":{"cid":"` + vCID + `","rootStorePath":"` + vPath + `","narHash":"sha256:19rqsvp4ld2m4zzgv6d2qc84hq6kvbqq2i37l9450lrb01py3pxz"},"configCommit":"` + vSHA[:40] + `","applies":["` + vCID + `"],"generation":4,"time":"2026-11-25T16:58:34Z"}`,
			`{"closure":{"cid":"` + vCID + `","rootStorePath":"` + vPath + `","narHash":"sha256-AAAA="},"applies":[]}`,
		},
	}
}

// pool holds values near the edges of what the schemas accept.
var pool = []any{
	vCID, vQm, vSHA, vPath, vSHA[:40], "", "x", "b", "bafy", "B" + vCID[1:], vCID + "!", vQm[:45], vQm + "1", "Qm" + vQm[2:44] + "0l",
	"0" + vSHA[1:], vSHA[:63], "E" + vSHA[1:], vSHA + "0", vSHA[:40] + vSHA[:23],
	"/nix/store/e" + vPath[12:], vPath + "/", "/nix/store/" + vPath[11:43], vPath[:len(vPath)-3] + "l b",
	"sha256:abc", "sha256-", "sha512:abc", "sha256:ab c",
	"2026-11-25T16:58:34Z", "2026-02-30T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25t16:58:34z", "2026-11-25T16:58:34.5Z",
	"2026-11-25T16:58:34+01:00", "2026-11-25 16:58:34Z", "2016-12-31T23:59:60Z",
	"controller_run", "worktree_run", "apply", "1", "é",
	0.0, 1.0, -1.0, 1.5, 1e300, math.Copysign(0, -1), float64(1 << 53), float64(1<<53) + 2,
	json.Number("0"), json.Number("7"), json.Number("01"), json.Number("-0"), json.Number("1.0"), json.Number("1e2"), json.Number("-3"),
	true, false, nil, map[string]any{}, []any{}, []any{vCID}, []any{"x"}, []any{map[string]any{"line": 1.0, "rule": "1"}},
}

// mutate returns a copy of v with one random change somewhere inside.
func mutate(r *rand.Rand, v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x)+1)
		keys := make([]string, 0, len(x))
		for k, e := range x {
			m[k] = e
			keys = append(keys, k)
		}
		slices.Sort(keys)
		switch op := r.IntN(6); {
		case op == 0 || len(keys) == 0:
			m[[]string{"extra", "cid", "line", "approval", "singleOperator", "time"}[r.IntN(6)]] = pool[r.IntN(len(pool))]
		case op == 1:
			delete(m, keys[r.IntN(len(keys))])
		case op == 2:
			m[keys[r.IntN(len(keys))]] = pool[r.IntN(len(pool))]
		default:
			k := keys[r.IntN(len(keys))]
			m[k] = mutate(r, m[k])
		}
		return m
	case []any:
		a := slices.Clone(x)
		if len(a) == 0 || r.IntN(3) == 0 {
			return append(a, pool[r.IntN(len(pool))])
		}
		i := r.IntN(len(a))
		a[i] = mutate(r, a[i])
		return a
	}
	return pool[r.IntN(len(pool))]
}

func decodeBoth(t testing.TB, s string) []any {
	t.Helper()
	v1, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(s)))
	if err != nil {
		t.Fatal(err)
	}
	var v2 any
	if err := json.Unmarshal([]byte(s), &v2); err != nil {
		t.Fatal(err)
	}
	var strict any
	if err := jsonv2.Unmarshal([]byte(s), &strict); err != nil {
		t.Fatal(err)
	}
	return []any{v1, v2, strict}
}

// TestFastPathAgrees: every value the fast path accepts, the compiled
// schema accepts (checked on many mutations of valid predicates), and every
// well-formed sample takes the fast path.
func TestFastPathAgrees(t *testing.T) {
	all, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for typ, samples := range validSamples() {
		accepted, rejected := 0, 0
		for _, s := range samples {
			for _, v := range decodeBoth(t, s) {
				if !fastValid(typ, v) {
					t.Errorf("%s: well-formed sample not on the fast path: %s", typ, s)
				}
				if err := all[typ].Validate(v); err != nil {
					t.Errorf("%s: sample invalid: %v", typ, err)
				}
				cur := v
				for i := 0; i < 4000; i++ {
					if i%8 == 0 {
						cur = v
					}
					cur = mutate(r, cur)
					fast := fastValid(typ, cur)
					full := all[typ].Validate(cur) == nil
					if fast && !full {
						b, _ := json.Marshal(cur)
						t.Fatalf("%s: fast path accepts what the schema rejects: %s", typ, b)
					}
					if full {
						accepted++
					} else {
						rejected++
					}
				}
			}
		}
		if accepted == 0 || rejected == 0 {
			t.Errorf("%s: generator too narrow: %d valid, %d invalid mutations", typ, accepted, rejected)
		}
	}
}

// TestFastPathOtherTypes: no fast path for unknown types.
func TestFastPathOtherTypes(t *testing.T) {
	if fastValid("https://example.com/other", map[string]any{}) {
		t.Fatal("fast path accepted an unknown predicate type")
	}
}

// TestFastPathSchemaDigest pins the schema files fastpath.go was written
// from: when one changes, review fastpath.go and update the digest.
func TestFastPathSchemaDigest(t *testing.T) {
	want := map[string]string{
		"predicates/apply.v1.schema.json":          "08a93037912d864a37af5e9f50d0e29574dce10ddc079735f6acfb95d42c3fd8",
		"predicates/approval.v1.schema.json":       "cf0cc90f4637d824a0c123c51961184313afee5878d557ff47ae7ec132f98caa",
		"predicates/audit-log.v1.schema.json":      "6855b03d1bee1e6d0950d967f4b456145d77932acf81ef4e5074828098652917",
		"predicates/defs.schema.json":              "3356b053a7ba8d353f1ecead2c803957469353224d6efbbcb3e3836ebd51f49b",
		"predicates/proposal.v1.schema.json":       "532305d8ef451048941e1885420888c2045b27a2cccf7bb71a5e5ad66249c8d2",
		"predicates/running-config.v1.schema.json": "68e17847aa9fe8f33328079ce5f8649d7c203908f0b911a559dd47676c0ecaf7",
	}
	for f, d := range want {
		b, err := predicateFS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != d {
			t.Errorf("%s changed (sha256 %x): review fastpath.go against it, then update this digest", f, s)
		}
	}
}

var fuzzTypes = []string{PredicateProposal, PredicateApproval, PredicateApply, PredicateAuditLog, PredicateRunningConfig}

// FuzzFastPath: for any JSON text, decoded by the strict decoder (or by
// jsonschema's and encoding/json's, which let repeated names through), the
// fast path never accepts what the compiled schema rejects.
func FuzzFastPath(f *testing.F) {
	for i, typ := range fuzzTypes {
		for _, s := range validSamples()[typ] {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Add(uint8(0), []byte(`{"workspace":"","sourceModified":true}`))
	f.Add(uint8(4), []byte(`{"closure":{},"applies":[1]}`))
	// Repeated and case-variant member names: the strict decoder refuses
	// the first kind, the fast path must not take the second for the member.
	pr := `{"cid":"` + vCID + `","sha256":"` + vSHA + `"}`
	f.Add(uint8(1), []byte(`{"patch":{"cid":"x"},"patch":`+pr+`}`))
	f.Add(uint8(1), []byte(`{"Patch":{"cid":"x"},"patch":`+pr+`}`))
	f.Add(uint8(1), []byte(`{"patch":`+pr+`,"Comment":"c"}`))
	f.Add(uint8(2), []byte(`{"workspace":"w","patch":`+pr+`,"singleOperator":false,"SingleOperator":true,"auditLine":{"snapshot":"`+vCID+`","line":1}}`))
	f.Add(uint8(0), []byte(`{"workspace":"w","patch":`+pr+`,"auditLine":{"snapshot":"`+vCID+`","line":1},"action":"worktree_run","sourceModified":false,"SourceModified":true}`))
	all, err := compiled()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ti uint8, b []byte) {
		typ := fuzzTypes[int(ti)%len(fuzzTypes)]
		var vs []any
		if v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b)); err == nil {
			vs = append(vs, v)
		}
		var v2 any
		if json.Unmarshal(b, &v2) == nil {
			vs = append(vs, v2)
		}
		// The strict decoder, as verification reads predicates: what it
		// refuses, ValidatePredicate refuses.
		var strict any
		if jsonv2.Unmarshal(b, &strict) == nil {
			vs = append(vs, strict)
		} else if ValidatePredicate(typ, b) == nil {
			t.Fatalf("%s: ValidatePredicate accepts what the strict decoder refuses: %s", typ, b)
		}
		for _, v := range vs {
			if fastValid(typ, v) {
				if err := all[typ].Validate(v); err != nil {
					t.Fatalf("%s: fast path accepts what the schema rejects (%v): %s", typ, err, b)
				}
			}
		}
	})
}

// BenchmarkValidatePredicate compares ValidatePredicateValue (fast path)
// with the compiled JSON Schema alone, on a proposal/v1 predicate.
func BenchmarkValidatePredicate(b *testing.B) {
	all, err := compiled()
	if err != nil {
		b.Fatal(err)
	}
	v := decodeBoth(b, validSamples()[PredicateProposal][0])[1]
	b.Run("fast-path", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ValidatePredicateValue(PredicateProposal, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonschema", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := all[PredicateProposal].Validate(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
