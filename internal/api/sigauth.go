package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/agentix/agentix-store/kv"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/dgraph-io/badger/v4"
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
// (replay). Seen nonces are kept in the node's database (keys under
// prefixNonce, fsynced before the request is acted on) until TS+SigWindow
// has passed, so a replay is refused across restarts too. The scheme name
// is matched case-insensitively (RFC 9110). The body is then read in full
// and hashed before the handler sees a byte of it (see spoolBody): a body
// that does not match X-Content-SHA256 is refused with 400 and nothing is
// stored, pinned, published or appended.

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

// prefixNonce is the badger key space of seen request nonces
// (kv.PrefixNonces): "n/" <key id> "/" <nonce> → empty, with a badger TTL of
// TS+SigWindow (plus a minute of margin).
var prefixNonce = kv.PrefixNonces

// nonceMargin is kept past a nonce's window, for clock steps.
const nonceMargin = time.Minute

// errNonceStore is a failure to record a nonce durably: the request is
// refused (503), never acted on unrecorded.
var errNonceStore = errors.New("cannot record the request nonce")

// sigVerifier checks signed requests against a set of operator keys.
type sigVerifier struct {
	keys *attest.KeySet
	db   *badger.DB // seen nonces, durable; nil keeps them in memory only
	now  func() time.Time

	mu        sync.Mutex
	seen      map[string]time.Time // keyid/nonce -> expiry
	lastSweep time.Time
}

func newSigVerifier(keys *attest.KeySet, db *badger.DB) *sigVerifier {
	return &sigVerifier{keys: keys, db: db, now: time.Now, seen: map[string]time.Time{}}
}

// authScheme splits an Authorization header into its scheme (as sent) and
// parameters; ok is false when there is no scheme.
func authScheme(h string) (scheme, params string, ok bool) {
	h = strings.TrimLeft(h, " \t")
	scheme, params, _ = strings.Cut(h, " ")
	return scheme, strings.TrimLeft(params, " \t"), scheme != ""
}

// isSigned reports whether r's Authorization uses SigScheme (any case).
func isSigned(r *http.Request) bool {
	scheme, _, ok := authScheme(r.Header.Get("Authorization"))
	return ok && strings.EqualFold(scheme, SigScheme)
}

// check verifies a signed request; on success it wraps r.Body so that a
// body not matching the signed digest fails when read to its end.
func (v *sigVerifier) check(r *http.Request) (keyID string, err error) {
	if v == nil || v.keys == nil || v.keys.Len() == 0 {
		return "", fmt.Errorf("%w: this node trusts no operator keys", ErrBadSignature)
	}
	scheme, params, ok := authScheme(r.Header.Get("Authorization"))
	if !ok || !strings.EqualFold(scheme, SigScheme) {
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
	if err := v.remember(keyID, nonce, time.Unix(t, 0), now); err != nil {
		return "", err
	}
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	r.Body = &digestReader{r: body, h: sha256.New(), want: want}
	return keyID, nil
}

// remember records keyID/nonce as seen until ts+SigWindow, or fails with
// ErrBadSignature when it was seen before (in this process or, through the
// database, before a restart). The record is durable before it returns.
func (v *sigVerifier) remember(keyID, nonce string, ts, now time.Time) error {
	seenKey := keyID + "/" + nonce
	exp := ts.Add(SigWindow + nonceMargin)
	replayed := fmt.Errorf("%w: replayed (nonce %s of key %s seen before)", ErrBadSignature, nonce, keyID)
	v.mu.Lock()
	if now.Sub(v.lastSweep) > 10*time.Second {
		for s, e := range v.seen {
			if now.After(e) {
				delete(v.seen, s)
			}
		}
		v.lastSweep = now
	}
	if _, dup := v.seen[seenKey]; dup {
		v.mu.Unlock()
		return replayed
	}
	// Claimed in memory first: a concurrent duplicate in this process
	// is refused above; the database answers for earlier processes.
	v.seen[seenKey] = exp
	v.mu.Unlock()
	if v.db == nil {
		return nil
	}
	key := append(append(bytes.Clone(prefixNonce), keyID...), "/"+nonce...)
	dup := false
	err := v.db.Update(func(txn *badger.Txn) error {
		switch _, err := txn.Get(key); {
		case err == nil:
			dup = true
			return nil
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return txn.SetEntry(badger.NewEntry(key, nil).WithTTL(time.Until(exp)))
	})
	if err == nil && !dup {
		err = v.db.Sync()
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w %s of key %s: %v", errNonceStore, nonce, keyID, err)
	case dup:
		return replayed
	}
	return nil
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
