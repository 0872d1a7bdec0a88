package audit

import (
	"encoding/json"
	"reflect"
	"testing"
)

// slowEntry decodes raw the way ParseEntry's fallback does.
func slowEntry(raw []byte) (Entry, bool, error) {
	var e Entry
	err := json.Unmarshal(raw, &e)
	return e, hasKey(raw, "result"), err
}

// checkFast fails when parseFast accepts raw but disagrees with
// encoding/json.
func checkFast(t *testing.T, raw []byte) (accepted bool) {
	t.Helper()
	fe, frs, ok := parseFast(raw)
	if !ok {
		return false
	}
	se, srs, err := slowEntry(raw)
	if err != nil {
		t.Fatalf("fast path accepted %q, encoding/json: %v", raw, err)
	}
	if !reflect.DeepEqual(fe, se) {
		t.Fatalf("fast path decoded %q as\n%+v\nencoding/json as\n%+v", raw, fe, se)
	}
	if frs != srs {
		t.Fatalf("fast path result-is-string %v, encoding/json %v for %q", frs, srs, raw)
	}
	return true
}

func TestParseFast(t *testing.T) {
	for _, l := range sampleLines(t) {
		if !checkFast(t, []byte(l[:len(l)-1])) {
			t.Errorf("fast path refused a sample line: %s", l)
		}
	}
	for _, tc := range []struct {
		in     string
		accept bool
	}{
		{`{}`, true},
		{` {"action": "x", "result": null, "timestamp": "t"} `, true},
		{`{"goal": "caf\u00e9 \"q\" \/", "action": "a", "result": "r", "timestamp": "t"}`, true},
		{`{"goal": "café", "action": "a", "result": "r", "timestamp": "t"}`, true},
		{`{"policy_violations": [], "x": {"y": [1, -2.5e+3, true, null, "s\n"]}, "action": "a", "result": "", "timestamp": "t"}`, true},
		{`{"policy_violations": ["a", "b\\"], "action": "a", "result": "r", "timestamp": "t"}`, true},
		{`{"source_modified": null, "execute": false, "action": "a", "result": "r", "timestamp": "t"}`, true},
		// Unsure or invalid: left to encoding/json.
		{`{"Action": "a", "result": "r", "timestamp": "t"}`, false},
		{`{"action": "a", "action": "b", "result": "r", "timestamp": "t"}`, false},
		{`{"source_modified": "no", "action": "a", "result": "r", "timestamp": "t"}`, false},
		{`{"policy_violations": [1], "action": "a", "result": "r", "timestamp": "t"}`, false},
		{`{"action": "a", "result": "r", "timestamp": "t"} x`, false},
		{`{"action": "a", "result": "r", "timestamp": "t",}`, false},
		{`{"x": 01, "action": "a"}`, false},
		{`{"x": "\q", "action": "a"}`, false},
		{`{"a\u0063tion": "a", "result": "r", "timestamp": "t"}`, false},
		{`{"action": "a"`, false},
	} {
		if got := checkFast(t, []byte(tc.in)); got != tc.accept {
			t.Errorf("parseFast(%s) accepted %v, want %v", tc.in, got, tc.accept)
		}
	}
}

// FuzzParseEntryFast checks that whatever the fast path accepts,
// encoding/json accepts too and decodes to the same Entry.
func FuzzParseEntryFast(f *testing.F) {
	for _, l := range sampleLines(f) {
		f.Add([]byte(l[:len(l)-1]))
	}
	f.Add([]byte(`{"goal": "caf\u00e9", "x": [{"y": -0.5e-3}], "policy_violations": ["a"], "result": null, "action": "a", "timestamp": "t"}`))
	f.Add([]byte(`{"ſource_modified": true, "action": "a", "result": "r", "timestamp": "t"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFast(t, in)
	})
}

// BenchmarkParseEntry compares the fast path with encoding/json over the
// sample's line shapes.
func BenchmarkParseEntry(b *testing.B) {
	ls := sampleLines(b)
	var raws [][]byte
	var n int64
	for _, l := range ls {
		raws = append(raws, []byte(l[:len(l)-1]))
		n += int64(len(l) - 1)
	}
	b.Run("ParseEntry", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			for j, r := range raws {
				if _, err := ParseEntry(int64(j+1), r); err != nil && j < 7 {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			for _, r := range raws {
				var e Entry
				_ = json.Unmarshal(r, &e)
			}
		}
	})
}
