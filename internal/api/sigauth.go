package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentix/agentix-store/attest"
)

// Signed requests: instead of the bearer token, a write may be signed by an
// operator key named in the node's trust policy (its approver keys and node
// keys). The request carries
//
//	Authorization: AgentixSig keyid=<hex key id>, ts=<unix seconds>, nonce=<hex>, sig=<base64>
//	X-Content-SHA256: <hex sha256 of the body>
//
// and the signature is over the message
//
//	"agentix-store request v1\n" METHOD "\n" PATH[?QUERY] "\n" TS "\n" NONCE "\n" CONTENT-SHA256 "\n" HOST
//
// The daemon accepts it when the key is trusted, the signature verifies,
// TS is within SigWindow of its clock and the key's NONCE (8 to 64 hex
// digits, random per request) was not seen before within the window
// (replay). The body is then hashed as it is read;
// a body that does not match X-Content-SHA256 fails the request at its end,
// before anything is pinned, published or appended.

// SigScheme is the Authorization scheme of signed requests.
const SigScheme = "AgentixSig"

// SigWindow bounds the clock skew accepted for signed requests.
const SigWindow = 5 * time.Minute

// ErrBadSignature is returned for a signed request that does not verify.
var ErrBadSignature = errors.New("request signature")

func sigMessage(method, pathQuery, ts, nonce, digest, host string) []byte {
	return []byte("agentix-store request v1\n" + method + "\n" + pathQuery + "\n" + ts + "\n" + nonce + "\n" + digest + "\n" + host)
}

// SignRequest signs req (whose body has the given sha256) with s at now.
func SignRequest(req *http.Request, s *attest.Signer, bodySHA256 []byte, now time.Time) error {
	ts := strconv.FormatInt(now.Unix(), 10)
	var nb [16]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	nonce := hex.EncodeToString(nb[:])
	digest := hex.EncodeToString(bodySHA256)
	sig, err := s.Sign(sigMessage(req.Method, req.URL.RequestURI(), ts, nonce, digest, req.URL.Host))
	if err != nil {
		return err
	}
	req.Header.Set("X-Content-SHA256", digest)
	req.Header.Set("Authorization", fmt.Sprintf("%s keyid=%s, ts=%s, nonce=%s, sig=%s", SigScheme, s.KeyID(), ts, nonce, base64.StdEncoding.EncodeToString(sig)))
	return nil
}

// sigVerifier checks signed requests against a set of operator keys.
type sigVerifier struct {
	keys *attest.KeySet
	now  func() time.Time

	mu        sync.Mutex
	seen      map[string]time.Time // keyid/nonce -> expiry
	lastSweep time.Time
}

func newSigVerifier(keys *attest.KeySet) *sigVerifier {
	return &sigVerifier{keys: keys, now: time.Now, seen: map[string]time.Time{}}
}

// check verifies a signed request; on success it wraps r.Body so that a
// body not matching the signed digest fails when read to its end.
func (v *sigVerifier) check(r *http.Request) (keyID string, err error) {
	if v == nil || v.keys == nil || v.keys.Len() == 0 {
		return "", fmt.Errorf("%w: this node trusts no operator keys", ErrBadSignature)
	}
	params, ok := strings.CutPrefix(r.Header.Get("Authorization"), SigScheme+" ")
	if !ok {
		return "", fmt.Errorf("%w: not an %s authorization", ErrBadSignature, SigScheme)
	}
	kv := map[string]string{}
	for _, part := range strings.Split(params, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", fmt.Errorf("%w: malformed parameter %q", ErrBadSignature, part)
		}
		kv[k] = val
	}
	keyID, ts, nonce, sigB64 := kv["keyid"], kv["ts"], kv["nonce"], kv["sig"]
	if _, err := hex.DecodeString(nonce); err != nil || len(nonce) < 8 || len(nonce) > 64 {
		return "", fmt.Errorf("%w: nonce %q must be 8 to 64 hex digits", ErrBadSignature, nonce)
	}
	key, ok := v.keys.Get(keyID)
	if !ok {
		return "", fmt.Errorf("%w: key %q is not an operator key of this node's trust policy", ErrBadSignature, keyID)
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: ts %q", ErrBadSignature, ts)
	}
	now := v.now()
	if d := now.Sub(time.Unix(t, 0)); d > SigWindow || d < -SigWindow {
		return "", fmt.Errorf("%w: timestamp off by %v (window %v)", ErrBadSignature, d.Round(time.Second), SigWindow)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return "", fmt.Errorf("%w: sig is not base64", ErrBadSignature)
	}
	digest := strings.ToLower(r.Header.Get("X-Content-SHA256"))
	want, err := hex.DecodeString(digest)
	if err != nil || len(want) != sha256.Size {
		return "", fmt.Errorf("%w: X-Content-SHA256 %q is not a hex sha256", ErrBadSignature, digest)
	}
	if err := key.Verify(sigMessage(r.Method, r.URL.RequestURI(), ts, nonce, digest, r.Host), sig); err != nil {
		return "", fmt.Errorf("%w: does not verify with key %s", ErrBadSignature, keyID)
	}
	v.mu.Lock()
	if now.Sub(v.lastSweep) > 10*time.Second {
		for s, exp := range v.seen {
			if now.After(exp) {
				delete(v.seen, s)
			}
		}
		v.lastSweep = now
	}
	seenKey := keyID + "/" + nonce
	if _, dup := v.seen[seenKey]; dup {
		v.mu.Unlock()
		return "", fmt.Errorf("%w: replayed (nonce %s of key %s seen before)", ErrBadSignature, nonce, keyID)
	}
	v.seen[seenKey] = now.Add(2 * SigWindow)
	v.mu.Unlock()
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	r.Body = &digestReader{r: body, h: sha256.New(), want: want}
	return keyID, nil
}

// ErrBodyDigest is returned by a signed request's body when its bytes do
// not match the signed X-Content-SHA256.
var ErrBodyDigest = errors.New("request body does not match its signed X-Content-SHA256")

type digestReader struct {
	r    io.ReadCloser
	h    hash.Hash
	want []byte
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF && !bytes.Equal(d.h.Sum(nil), d.want) {
		return n, ErrBodyDigest
	}
	return n, err
}

func (d *digestReader) Close() error { return d.r.Close() }
