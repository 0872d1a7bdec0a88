package closure

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// CacheOptions configure NewCacheHandler.
type CacheOptions struct {
	// Compression of the NARs the narinfos point to: "none" (default) or
	// "zstd" (compressed on the fly; such narinfos carry no FileHash).
	// Both URLs are always served.
	Compression string
	// Priority is announced in nix-cache-info (default 40, as
	// cache.nixos.org; lower is preferred).
	Priority int
	// StoreDir is announced in nix-cache-info (default /nix/store).
	StoreDir string
}

// NewCacheHandler returns a Nix binary cache (substituter) over the closures
// imported into st/db. It serves, relative to its mount point (mount it with
// http.StripPrefix, e.g. at /nix/ as http.StripPrefix("/nix", h)):
//
//	GET /nix-cache-info            StoreDir, WantMassQuery, Priority
//	GET /<hash>.narinfo            the path's narinfo, signed with key
//	GET /nar/<narhash>.nar         the NAR, uncompressed (Range and HEAD work)
//	GET /nar/<narhash>.nar.zst     the NAR compressed with zstd on the fly
//
// where <hash> is a store path's hash part and <narhash> the nixbase32
// SHA-256 of its NAR. A narinfo carries the signatures the path came with
// plus one by key over Nix's fingerprint
// "1;<storepath>;<narHash>;<narSize>;<refs,…>". Only paths of completely
// imported (pinned) closures are served; every NAR block is hash-checked as
// it is read from the store. Other paths and methods get 404 and 405.
func NewCacheHandler(st *store.Store, db *badger.DB, key signature.SecretKey, o CacheOptions) (http.Handler, error) {
	switch o.Compression {
	case "":
		o.Compression = "none"
	case "none", "zstd":
	default:
		return nil, fmt.Errorf("binary cache: compression %q not supported (want none or zstd)", o.Compression)
	}
	if o.Priority == 0 {
		o.Priority = 40
	}
	if o.StoreDir == "" {
		o.StoreDir = DefaultStoreDir
	}
	return &cacheHandler{st: st, db: db, key: key, o: o, narinfos: map[string]string{}}, nil
}

type cacheHandler struct {
	st  *store.Store
	db  *badger.DB
	key signature.SecretKey
	o   CacheOptions

	// narinfos caches rendered, signed narinfos by the CID of their
	// StorePathInfo record (immutable: same CID, same record, same
	// text). The index is still consulted on every request, so a path
	// no longer indexed is never served from here.
	mu       sync.Mutex
	narinfos map[string]string
}

// maxCachedNarinfos bounds cacheHandler.narinfos (about 1 KiB each); when
// full it is emptied and refilled.
const maxCachedNarinfos = 8192

func (h *cacheHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case p == "nix-cache-info":
		w.Header().Set("Content-Type", "text/x-nix-cache-info")
		fmt.Fprintf(w, "StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n", h.o.StoreDir, h.o.Priority)
	case strings.HasSuffix(p, ".narinfo") && !strings.Contains(p, "/"):
		h.serveNarinfo(w, r, strings.TrimSuffix(p, ".narinfo"))
	case strings.HasPrefix(p, "nar/"):
		h.serveNAR(w, r, strings.TrimPrefix(p, "nar/"))
	default:
		http.NotFound(w, r)
	}
}

func (h *cacheHandler) serveNarinfo(w http.ResponseWriter, r *http.Request, hashPart string) {
	if len(hashPart) != 32 || nixbase32.ValidateString(hashPart) != nil {
		http.NotFound(w, r)
		return
	}
	c, err := LookupHashPart(h.db, hashPart)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	text, err := h.narinfo(r.Context(), c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/x-nix-narinfo")
	w.Header().Set("Content-Length", strconv.Itoa(len(text)))
	if r.Method == http.MethodGet {
		io.WriteString(w, text)
	}
}

// narinfo returns the signed narinfo of the StorePathInfo record c, from
// the cache or rendered (record read and hash-checked, decoded, signed) and
// cached.
func (h *cacheHandler) narinfo(ctx context.Context, c cid.Cid) (string, error) {
	k := c.KeyString()
	h.mu.Lock()
	text, ok := h.narinfos[k]
	h.mu.Unlock()
	if ok {
		return text, nil
	}
	spi, err := LoadStorePathInfo(ctx, h.st, c)
	if err != nil {
		return "", err
	}
	text, err = Narinfo(spi, h.key, h.o.Compression)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	if len(h.narinfos) >= maxCachedNarinfos {
		clear(h.narinfos)
	}
	h.narinfos[k] = text
	h.mu.Unlock()
	return text, nil
}

// Fingerprint is the string a narinfo signature signs:
// "1;<storepath>;<narHash as sha256:nixbase32>;<narSize>;<refs joined by ,>".
func Fingerprint(pi PathInfo) string {
	return "1;" + pi.Path + ";" + pi.NarHashString() + ";" + strconv.FormatInt(pi.NarSize, 10) + ";" + strings.Join(pi.References, ",")
}

// Narinfo renders the narinfo of a stored path, signed with key, pointing
// to the NAR with the given compression ("none" or "zstd").
func Narinfo(spi *StorePathInfo, key signature.SecretKey, compression string) (string, error) {
	pi, err := spi.PathInfo()
	if err != nil {
		return "", err
	}
	h32 := nixbase32.EncodeToString(pi.NarHash.Digest())
	nh := nixhash.NewHashWithEncoding
	narHash, err := nh(nixhash.SHA256, pi.NarHash.Digest(), nixhash.NixBase32, true)
	if err != nil {
		return "", err
	}
	ni := &narinfo.NarInfo{
		StorePath:   pi.Path,
		Compression: compression,
		NarHash:     narHash,
		NarSize:     uint64(pi.NarSize),
		CA:          pi.CA,
	}
	switch compression {
	case "none":
		ni.URL = narURLPath(h32, "")
		ni.FileHash, ni.FileSize = narHash, ni.NarSize
	case "zstd":
		ni.URL = narURLPath(h32, ".zst")
	default:
		return "", fmt.Errorf("compression %q not supported", compression)
	}
	for _, ref := range pi.References {
		ni.References = append(ni.References, ref[strings.LastIndexByte(ref, '/')+1:])
	}
	if pi.Deriver != "" {
		ni.Deriver = pi.Deriver[strings.LastIndexByte(pi.Deriver, '/')+1:]
	}
	for _, s := range pi.Signatures {
		sig, err := signature.ParseSignature(s)
		if err == nil && sig.Name != key.ToPublicKey().Name {
			ni.Signatures = append(ni.Signatures, sig)
		}
	}
	sig, err := key.Sign(rand.Reader, Fingerprint(pi))
	if err != nil {
		return "", fmt.Errorf("sign narinfo of %s: %w", pi.Path, err)
	}
	ni.Signatures = append(ni.Signatures, sig)
	return ni.String(), nil
}

func (h *cacheHandler) serveNAR(w http.ResponseWriter, r *http.Request, name string) {
	h32, zst := strings.CutSuffix(name, ".nar.zst")
	if !zst {
		var ok bool
		if h32, ok = strings.CutSuffix(name, ".nar"); !ok {
			http.NotFound(w, r)
			return
		}
	}
	if len(h32) != 52 || nixbase32.ValidateString(h32) != nil {
		http.NotFound(w, r)
		return
	}
	c, err := LookupNAR(h.db, h32)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := h.st.Cat(r.Context(), c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if !zst {
		w.Header().Set("Content-Type", "application/x-nix-nar")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		if r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
			http.ServeContent(w, r, "", time.Time{}, f)
			return
		}
		// The whole NAR, as Nix asks for it: written block by block
		// (one write per block, not per 32 KiB), as a static file
		// server's sendfile would.
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Content-Length", strconv.FormatInt(f.Size(), 10))
		if r.Method == http.MethodHead {
			return
		}
		if n, err := f.WriteTo(w); err != nil || n != f.Size() {
			// Headers are sent: cut the response short so the client
			// sees a broken stream, never a wrong but complete one.
			panic(http.ErrAbortHandler)
		}
		return
	}
	w.Header().Set("Content-Type", "application/zstd")
	if r.Method == http.MethodHead {
		return
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := io.Copy(enc, f); err != nil {
		// Headers are sent: cut the response short so the client sees a
		// broken stream, never a wrong but complete one.
		enc.Close()
		panic(http.ErrAbortHandler)
	}
	enc.Close()
}
