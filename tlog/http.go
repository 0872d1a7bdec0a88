package tlog

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/tessera/api/layout"
)

// Cache-Control values. Full tiles and full entry bundles never change.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cachePartial    = "public, max-age=5"
	cacheCheckpoint = "no-cache"
)

// MaxWitnessRequest bounds the body of an add-checkpoint request.
const MaxWitnessRequest = 64 << 10

// Handler serves the log per C2SP tlog-tiles and tlog-witness. Paths are
// relative to the log's prefix (mount it with http.StripPrefix("/log", h)):
//
//	GET  /checkpoint                        latest signed checkpoint
//	GET  /tile/<L>/<N>[.p/<W>]              hash tile
//	GET  /tile/entries/<N>[.p/<W>]          entry bundle
//	POST /add-checkpoint                    tlog-witness (when WitnessSigner is set)
//	GET  /proof/inclusion?index=I&size=S    JSON inclusion proof (or leaf_hash=HEX)
//	GET  /proof/consistency?old=A&new=B     JSON consistency proof
//
// Reads are public. Every malformed request gets a 4xx status with a
// one-line reason as the body.
func (l *Log) Handler() http.Handler { return http.HandlerFunc(l.serveHTTP) }

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

func (l *Log) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "add-checkpoint" {
		l.serveAddCheckpoint(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
		return
	}
	switch {
	case p == layout.CheckpointPath:
		cp := l.cur.Load()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", cacheCheckpoint)
		w.Write(cp.Note)
	case strings.HasPrefix(p, "tile/entries/"):
		l.serveBundle(w, r, strings.TrimPrefix(p, "tile/entries/"))
	case strings.HasPrefix(p, "tile/"):
		l.serveTile(w, r, strings.TrimPrefix(p, "tile/"))
	case p == "proof/inclusion":
		l.serveInclusion(w, r)
	case p == "proof/consistency":
		l.serveConsistency(w, r)
	default:
		httpError(w, http.StatusNotFound, "no such log resource: %q", r.URL.Path)
	}
}

// ParseTilePath parses the part of a tile path after "tile/": "<L>/<N>" or
// "<L>/<N>.p/<W>", or "entries/<N>[.p/<W>]" (level -1). Width 0 means a full
// tile. Only the canonical spelling is accepted (no "00" levels).
func ParseTilePath(p string) (level int, index uint64, width uint8, err error) {
	level, index, width, err = parseTilePath(p)
	if err != nil {
		return 0, 0, 0, err
	}
	canon := layout.EntriesPath(index, width)
	if level >= 0 {
		canon = layout.TilePath(uint64(level), index, width)
	}
	if canon != "tile/"+p {
		return 0, 0, 0, fmt.Errorf("tile path %q is not canonical (want %q)", p, canon)
	}
	return level, index, width, nil
}

func parseTilePath(p string) (level int, index uint64, width uint8, err error) {
	if rest, ok := strings.CutPrefix(p, "entries/"); ok {
		index, width, err = layout.ParseTileIndexPartial(rest)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("entry bundle path %q: %w", p, err)
		}
		return -1, index, width, nil
	}
	ls, rest, ok := strings.Cut(p, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("tile path %q: no index", p)
	}
	l, err := layout.ParseTileLevel(ls)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("tile path %q: %w", p, err)
	}
	index, width, err = layout.ParseTileIndexPartial(rest)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("tile path %q: %w", p, err)
	}
	return int(l), index, width, nil
}

func setTileCache(w http.ResponseWriter, width uint8) {
	if width == 0 {
		w.Header().Set("Cache-Control", cacheImmutable)
	} else {
		w.Header().Set("Cache-Control", cachePartial)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
}

func (l *Log) serveTile(w http.ResponseWriter, r *http.Request, p string) {
	level, index, width, err := ParseTilePath(p)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if level > 7 {
		httpError(w, http.StatusNotFound, "tile level %d: no such tile in a 64-bit log", level)
		return
	}
	want := uint64(width)
	if want == 0 {
		want = tileWidth
	}
	// Serve only what the published checkpoint covers: nothing of a batch
	// that is not yet durable.
	if have := l.Size() >> (uint64(level) * tileHeight); index >= (have+tileWidth-1)/tileWidth || index*tileWidth+want > have {
		httpError(w, http.StatusNotFound, "tile %d/%d of width %d is beyond log size %d", level, index, want, l.Size())
		return
	}
	var t []byte
	err = l.db.View(func(txn *badger.Txn) error {
		var err error
		t, err = readTile(txn, uint64(level), index)
		return err
	})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read tile: %v", err)
		return
	}
	if uint64(len(t)) < want*hashSize {
		httpError(w, http.StatusNotFound, "tile %d/%d has %d hashes, %d requested", level, index, len(t)/hashSize, want)
		return
	}
	if err := l.checkFullTile(uint64(level), index, t); err != nil {
		httpError(w, http.StatusInternalServerError, "read tile: %v", err)
		return
	}
	setTileCache(w, width)
	w.Write(t[:want*hashSize])
}

func (l *Log) serveBundle(w http.ResponseWriter, r *http.Request, p string) {
	_, index, width, err := ParseTilePath("entries/" + p)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	want := uint64(width)
	if want == 0 {
		want = tileWidth
	}
	size := l.Size()
	if index > (size-1)/tileWidth || size == 0 || index*tileWidth+want > size {
		httpError(w, http.StatusNotFound, "entry bundle %d of width %d is beyond log size %d", index, want, size)
		return
	}
	var out []byte
	n := uint64(0)
	err = l.db.View(func(txn *badger.Txn) error {
		return scanCheckedEntries(txn, index*tileWidth, index*tileWidth+want, func(_ uint64, v []byte) error {
			out = append(out, byte(len(v)>>8), byte(len(v)))
			out = append(out, v...)
			n++
			return nil
		})
	})
	if err == nil && n != want {
		err = fmt.Errorf("%w: bundle %d holds %d of %d entries", ErrCorrupt, index, n, want)
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read entry bundle: %v", err)
		return
	}
	setTileCache(w, width)
	w.Write(out)
}

// InclusionProofJSON is the body of GET proof/inclusion.
type InclusionProofJSON struct {
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leaf_hash,omitempty"`
	Proof    [][]byte `json:"proof"`
}

// ConsistencyProofJSON is the body of GET proof/consistency.
type ConsistencyProofJSON struct {
	Old   uint64   `json:"old"`
	New   uint64   `json:"new"`
	Proof [][]byte `json:"proof"`
}

func queryUint(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query parameter %s=%q is not a decimal size", name, s)
	}
	return v, nil
}

func (l *Log) proofError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadRange):
		httpError(w, http.StatusBadRequest, "%v", err)
	case errors.Is(err, ErrNotFound):
		httpError(w, http.StatusNotFound, "%v", err)
	default:
		httpError(w, http.StatusInternalServerError, "%v", err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	json.NewEncoder(w).Encode(v)
}

func (l *Log) serveInclusion(w http.ResponseWriter, r *http.Request) {
	size, err := queryUint(r, "size", 0)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if size == 0 {
		size = l.Size()
	}
	if lh := r.URL.Query().Get("leaf_hash"); lh != "" {
		h, err := hex.DecodeString(lh)
		if err != nil {
			if h, err = base64.StdEncoding.DecodeString(lh); err != nil {
				httpError(w, http.StatusBadRequest, "leaf_hash %q is neither hex nor base64", lh)
				return
			}
		}
		idx, p, err := l.InclusionProofByLeafHash(r.Context(), h, size)
		if err != nil {
			l.proofError(w, err)
			return
		}
		writeJSON(w, InclusionProofJSON{Index: idx, Size: size, LeafHash: h, Proof: p})
		return
	}
	if r.URL.Query().Get("index") == "" {
		httpError(w, http.StatusBadRequest, "query needs index=N or leaf_hash=HEX")
		return
	}
	idx, err := queryUint(r, "index", 0)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	p, err := l.InclusionProof(r.Context(), idx, size)
	if err != nil {
		l.proofError(w, err)
		return
	}
	writeJSON(w, InclusionProofJSON{Index: idx, Size: size, Proof: p})
}

func (l *Log) serveConsistency(w http.ResponseWriter, r *http.Request) {
	old, err := queryUint(r, "old", 0)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	nw, err := queryUint(r, "new", 0)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if nw == 0 {
		nw = l.Size()
	}
	p, err := l.ConsistencyProof(r.Context(), old, nw)
	if err != nil {
		l.proofError(w, err)
		return
	}
	writeJSON(w, ConsistencyProofJSON{Old: old, New: nw, Proof: p})
}
