package api

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/agentix/agentix-store/attest"
)

// FuzzCheckJSON: checkJSON never panics, and what it accepts the strict
// decoder reads as one value.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":1,"A":2}`, `{"a":{"b":[1,{"c":1,"c":2}]}}`, `{"payload":"x","payloadType":"y","signatures":[]}`,
		`{} {}`, ``, `{"a":`, `"str"`, `[{"x":1},{"x":1}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := checkJSON(b); err != nil && !errors.Is(err, ErrJSON) {
			t.Fatalf("checkJSON(%q): %v, not an ErrJSON", b, err)
		}
	})
}

// FuzzDecodePeerClosures: a peer's closures answer, however malformed,
// never panics the decoder; what it accepts has valid CIDs.
func FuzzDecodePeerClosures(f *testing.F) {
	f.Add([]byte(`[{"cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","root":"/nix/store/a-x","imported":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte(`[{"cid":"x","root":"/a","Root":"/b"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := decodePeerClosures(b)
		if err != nil {
			return
		}
		for _, c := range list {
			if !c.c.Defined() {
				t.Fatalf("accepted closure without a CID: %q", b)
			}
		}
	})
}

// FuzzAuthorization: no Authorization header makes the credential checks
// panic or accept a write.
func FuzzAuthorization(f *testing.F) {
	f.Add("Bearer tok", "")
	f.Add("AgentixSig keyid=00, ts=1, nonce=0011223344, sig=AAAA", "00")
	f.Add("agentixsig keyid=, ts=, nonce=, sig=", "zz")
	f.Add("  ", "")
	s := mustSigner(f)
	v := newSigVerifier(attest.NewKeySet(s.Verifier()), nil)
	f.Fuzz(func(t *testing.T, auth, digest string) {
		req, err := http.NewRequest("POST", "http://node/api/v1/log/append", nil)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Content-SHA256", digest)
		if Authorized(req, []byte("the-token")) {
			t.Fatalf("Authorization %q accepted as the token", auth)
		}
		if _, err := v.check(req); err == nil {
			t.Fatalf("Authorization %q accepted as a signature", auth)
		}
	})
}

func mustSigner(f *testing.F) *attest.Signer {
	priv, pub, err := attest.GenerateKey("")
	if err != nil {
		f.Fatal(err)
	}
	p := f.TempDir() + "/k"
	if err := attest.WriteKeyFiles(p, p+".pub", priv, pub); err != nil {
		f.Fatal(err)
	}
	s, err := attest.LoadSigner(p)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzReadStream: a daemon's NDJSON answer to a long operation, however
// malformed, never panics the client; it ends in a result, an error, or
// both, never silently.
func FuzzReadStream(f *testing.F) {
	for _, s := range []string{
		`{"progress":{"done":1,"total":2}}` + "\n" + `{"result":{"closure":"bafy","root":"/nix/store/x","paths":1,"narBytes":2,"reused":0}}` + "\n",
		`{"error":"audit log is not a continuation","kind":"not-append-only","status":409,"result":{"closure":"x"}}`,
		`{"progress":{"done":1,"total":2}}`,
		`{"progress":{"done":1,"total":2},"Progress":{"done":3,"total":4}}`,
		`{"result":{"paths":1,"paths":2}}`,
		"\n\n{}\n",
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var res ClosureImported
		err := readStream(bytes.NewReader(b), func(int64, int64) {}, &res)
		_ = err
	})
}

// FuzzDecodeRequest: the JSON bodies of the ingest, closure import, attest
// and genesis routes never panic the decoder, and a name given twice (in
// any case) is refused.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"workspace":"/w","name":"n","verify":true,"policy":"e30="}`, `{"workspace":"/a","workspace":"/b"}`,
		`{"Workspace":"/w"}`, `{"storePath":"/nix/store/x","jobs":2}`, `{"applies":["a","b"],"generation":3}`, `[]`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ir IngestRequest
		var cr ClosureImportRequest
		var rr RunningRequest
		var gr GenesisRequest
		for _, v := range []any{&ir, &cr, &rr, &gr} {
			if decodeRequest(b, v) == nil && checkJSON(b) != nil {
				t.Fatalf("decodeRequest accepted %q, which repeats a member name", b)
			}
		}
	})
}
