package kubo

import (
	"errors"
	"strings"
	"testing"
)

func TestParseImportResponse(t *testing.T) {
	tests := []struct {
		name, body string
		roots      int
		wantErr    bool
	}{
		{"one root", `{"Root":{"Cid":{"/":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},"PinErrorMsg":""}}`, 1, false},
		{"root and stats", `{"Root":{"Cid":{"/":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}}}` + "\n" + `{"Stats":{"BlockCount":1}}`, 1, false},
		{"pin error", `{"Root":{"Cid":{"/":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},"PinErrorMsg":"no space"}}`, 0, true},
		{"streamed error", `{"Message":"car: truncated","Code":0,"Type":"error"}`, 0, true},
		{"bad cid", `{"Root":{"Cid":{"/":"nope"}}}`, 0, true},
		{"garbage", `not json`, 0, true},
		{"empty", ``, 0, false},
	}
	for _, tc := range tests {
		roots, err := parseImportResponse(strings.NewReader(tc.body))
		if (err != nil) != tc.wantErr || len(roots) != tc.roots {
			t.Errorf("%s: roots %v, err %v", tc.name, roots, err)
		}
		if err != nil && !errors.Is(err, ErrKubo) {
			t.Errorf("%s: error %v does not match ErrKubo", tc.name, err)
		}
	}
	if _, err := New("ftp://x", nil); err == nil {
		t.Error("ftp URL accepted")
	}
}

// FuzzParseImportResponse: whatever Kubo answers, the parser never panics
// and every root it returns is a valid CID.
func FuzzParseImportResponse(f *testing.F) {
	f.Add(`{"Root":{"Cid":{"/":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},"PinErrorMsg":""}}`)
	f.Add(`{"Message":"x","Type":"error"}`)
	f.Add(`{"Root":null}{"Stats":{}}`)
	f.Fuzz(func(t *testing.T, body string) {
		roots, _ := parseImportResponse(strings.NewReader(body))
		for _, r := range roots {
			if !r.Defined() {
				t.Fatalf("undefined root from %q", body)
			}
		}
	})
}
