package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mc "github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
)

// Limits bound request bodies.
type Limits struct {
	// Operators are the keys whose signed requests are accepted as writes
	// besides the bearer token (see SignRequest); nil accepts none.
	Operators *attest.KeySet
	// MaxAdd bounds an add body (default 64 GiB).
	MaxAdd int64
	// MaxCAR bounds a CAR import body (default 4 GiB).
	MaxCAR int64
	// OnAuthenticated, when set, is called with each write request once its
	// credential has been accepted (the daemon uses it to exempt the
	// connection from its per-address cap).
	OnAuthenticated func(*http.Request)
}

// AddResult answers an add.
type AddResult struct {
	CID  string `json:"cid"`
	Size int64  `json:"size"`
}

// BlockStat describes a block.
type BlockStat struct {
	CID  string `json:"cid"`
	Size int    `json:"size"`
}

// ImportResult answers a CAR import.
type ImportResult struct {
	Roots  []string `json:"roots"`
	Blocks int      `json:"blocks"`
	Bytes  int64    `json:"bytes"`
}

// Pin is one pin.
type Pin struct {
	CID     string    `json:"cid"`
	Name    string    `json:"name,omitempty"`
	Type    string    `json:"type"`
	Created time.Time `json:"created"`
}

// PublishResult answers an attestation publish.
type PublishResult struct {
	ID       string `json:"id"`
	LogIndex uint64 `json:"log_index"`
	Existing bool   `json:"existing,omitempty"`
}

// AppendResult answers a log append.
type AppendResult struct {
	Index uint64 `json:"index"`
}

// Handler serves the API for n. token is the bearer token writes need.
func Handler(n *node.Node, token string, lim Limits) http.Handler {
	if lim.MaxAdd == 0 {
		lim.MaxAdd = 64 << 30
	}
	if lim.MaxCAR == 0 {
		lim.MaxCAR = 4 << 30
	}
	s := &server{n: n, token: []byte(token), lim: lim, sigs: newSigVerifier(lim.Operators, n.DB),
		spool: filepath.Join(n.Dir, spoolDir)}
	cleanSpool(s.spool)
	const noBody = 64 << 10 // endpoints that take no body
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/add", s.auth(lim.MaxAdd, s.add))
	mux.HandleFunc("GET /api/v1/cat/{cid}", s.cat)
	mux.HandleFunc("POST /api/v1/blocks", s.auth(store.MaxBlockSize, s.blockPut))
	mux.HandleFunc("GET /api/v1/blocks/{cid}", s.blockGet)
	mux.HandleFunc("GET /api/v1/blocks/{cid}/stat", s.blockStat)
	mux.HandleFunc("POST /api/v1/car", s.auth(lim.MaxCAR, s.carImport))
	mux.HandleFunc("GET /api/v1/car/{cid}", s.carExport)
	mux.HandleFunc("GET /api/v1/pins", s.pins)
	mux.HandleFunc("POST /api/v1/pins/{cid}", s.auth(noBody, s.pinAdd))
	mux.HandleFunc("DELETE /api/v1/pins/{cid}", s.auth(noBody, s.pinRm))
	mux.HandleFunc("POST /api/v1/gc", s.auth(noBody, s.gc))
	mux.HandleFunc("GET /api/v1/stat", s.stat)
	mux.HandleFunc("POST /api/v1/log/append", s.auth(tlog.MaxEntrySize, s.logAppend))
	mux.HandleFunc("POST /api/v1/attestations", s.auth(attest.MaxEnvelopeSize, s.publish))
	mux.HandleFunc("GET /api/v1/closures", s.closures)
	mux.HandleFunc("POST /api/v1/pin-from", s.auth(noBody, s.pinFrom))
	mux.HandleFunc("POST /api/v1/ingest", s.auth(maxOpRequest, s.ingest))
	mux.HandleFunc("POST /api/v1/closures/import", s.auth(noBody, s.closureImport))
	mux.HandleFunc("POST /api/v1/closures/import-car", s.auth(lim.MaxCAR, s.closureImportCAR))
	mux.HandleFunc("GET /api/v1/closures/{cid}", s.closureEntries)
	mux.HandleFunc("GET /api/v1/closures/{cid}/verify", s.closureVerify)
	mux.HandleFunc("GET /api/v1/closures/{cid}/car", s.closureExport)
	mux.HandleFunc("GET /api/v1/closures/{a}/diff/{b}", s.closureDiff)
	mux.HandleFunc("POST /api/v1/closures/{cid}/attest", s.auth(noBody, s.closureAttest))
	mux.HandleFunc("POST /api/v1/genesis", s.auth(noBody, s.genesis))
	// The public attestation reads are attest's handler, mounted here so
	// that every /api/v1 route is in this one table.
	ah := attest.Handler("/api/v1/attestations", n.Attest, n.Store.Blockstore())
	mux.Handle("GET /api/v1/attestations", ah)
	mux.Handle("GET /api/v1/attestations/{id}", ah)
	mux.HandleFunc("GET /api/v1/bundles/{cid}", s.bundle)
	mux.HandleFunc("GET /api/v1/log/checkpoint", s.logCheckpoint)
	mux.HandleFunc("GET /api/v1/log/entries", s.logEntries)
	mux.HandleFunc("GET /api/v1/log/inclusion", s.logInclusion)
	mux.HandleFunc("GET /api/v1/log/consistency", s.logConsistency)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &bodyReader{r: r.Body}
		}
		mux.ServeHTTP(w, r)
	})
}

type server struct {
	n     *node.Node
	token []byte
	lim   Limits
	sigs  *sigVerifier
	spool string // directory of signed bodies awaiting their digest check
}

// Authorized reports whether r carries the bearer token. The scheme name
// is case-insensitive (RFC 9110 section 11.1); the token is not.
func Authorized(r *http.Request, token []byte) bool {
	scheme, got, ok := authScheme(r.Header.Get("Authorization"))
	if !ok || !strings.EqualFold(scheme, "Bearer") || len(token) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), token) == 1
}

// auth admits a write with the bearer token or an operator's signature.
// A signed request's body (at most maxBody bytes) is read and checked
// against its signed digest before h runs, so h never acts on bytes that
// fail it. On success it calls Limits.OnAuthenticated.
func (s *server) auth(maxBody int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if isSigned(r) {
			if _, err := s.sigs.check(r); err != nil {
				code := http.StatusUnauthorized
				if errors.Is(err, errNonceStore) {
					code = http.StatusServiceUnavailable
				} else {
					w.Header().Set("WWW-Authenticate", SigScheme)
				}
				writeErr(w, code, err)
				return
			}
			if s.lim.OnAuthenticated != nil {
				s.lim.OnAuthenticated(r)
			}
			body, size, err := spoolBody(w, r.Body, maxBody, s.spool)
			if err != nil {
				writeErr(w, status(err), err)
				return
			}
			defer body.Close()
			r.Body, r.ContentLength = body, size
		} else if !Authorized(r, s.token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentix-store", `+SigScheme)
			writeErr(w, http.StatusUnauthorized, errors.New("this write needs the node's bearer token (Authorization: Bearer <dir>/token) or a request signed by an operator key"))
			return
		} else if s.lim.OnAuthenticated != nil {
			s.lim.OnAuthenticated(r)
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// status maps an error to an HTTP status.
func status(err error) int {
	var mbe *http.MaxBytesError
	var be *BodyError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &be):
		return be.status()
	case errors.Is(err, ErrBodyDigest), errors.Is(err, ErrPeerURL), errors.Is(err, ErrJSON), errors.Is(err, store.ErrUndecodable):
		return http.StatusBadRequest
	case isNoSpace(err):
		return http.StatusInsufficientStorage
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNotPinned), errors.Is(err, tlog.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrInvalidCAR), errors.Is(err, store.ErrMissingRoot), errors.Is(err, store.ErrInvalidCID),
		errors.Is(err, store.ErrInvalidPath), errors.Is(err, tlog.ErrEntryTooLarge),
		errors.Is(err, store.ErrBadChunker), errors.Is(err, store.ErrUnsupportedCodec):
		return http.StatusBadRequest
	case errors.Is(err, attest.ErrMalformedEnvelope), errors.Is(err, attest.ErrBadStatement), errors.Is(err, attest.ErrSchema),
		errors.Is(err, attest.ErrUnknownPredicate), errors.Is(err, attest.ErrNoSignature), errors.Is(err, attest.ErrWrongPayloadType):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrRange):
		return http.StatusRequestedRangeNotSatisfiable
	case errors.Is(err, store.ErrNoSpace):
		return http.StatusInsufficientStorage
	default:
		return http.StatusInternalServerError
	}
}

func pathCID(w http.ResponseWriter, r *http.Request) (cid.Cid, bool) {
	c, err := store.ParseCID(r.PathValue("cid"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return cid.Undef, false
	}
	return c, true
}

func boolParam(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: not a boolean", name, v)
	}
	return b, nil
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not an integer", name, v)
	}
	return i, nil
}

func (s *server) add(w http.ResponseWriter, r *http.Request) {
	pin, err := boolParam(r, "pin", true)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	chunker := r.URL.Query().Get("chunker")
	if chunker == "" {
		chunker = s.n.Config.Chunker
	}
	var size int64
	body := http.MaxBytesReader(w, r.Body, s.lim.MaxAdd)
	c, err := s.n.Store.Add(r.Context(), body, store.AddOptions{Chunker: chunker, Pin: pin, Progress: func(n int64) { size = n }})
	if err != nil {
		err = bodyFault(r, err)
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, AddResult{CID: c.String(), Size: size})
}

func (s *server) cat(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	off, err := intParam(r, "offset", 0)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	n, err := intParam(r, "length", -1)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	rc, err := s.n.Store.CatRange(r.Context(), c, off, n)
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	// A block that fails its hash check mid-stream aborts the response:
	// the client sees a truncated body, never wrong bytes.
	if _, err := io.Copy(w, rc); err != nil {
		panic(http.ErrAbortHandler)
	}
}

func (s *server) blockPut(w http.ResponseWriter, r *http.Request) {
	codec := r.URL.Query().Get("codec")
	if codec == "" {
		codec = "raw"
	}
	var code mc.Code
	if err := code.Set(codec); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("codec %q: unknown", codec))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, store.MaxBlockSize))
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	id, err := cid.V1Builder{Codec: uint64(code), MhType: mh.SHA2_256}.Sum(data)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	blk, _ := blocks.NewBlockWithCid(data, id)
	// The bytes must decode in the codec they claim (dag-pb, dag-cbor,
	// dag-json: their links are what pins and GC follow); other codecs are
	// stored as opaque bytes.
	if _, err := store.Links(blk); err != nil && !errors.Is(err, store.ErrUnsupportedCodec) {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("block of codec %s: %w", codec, err))
		return
	}
	if err := s.n.Store.Blockstore().Put(r.Context(), blk); err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, BlockStat{CID: id.String(), Size: len(data)})
}

func (s *server) blockGet(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	blk, err := s.n.Store.Blockstore().Get(r.Context(), c)
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.ipld.raw")
	w.Write(blk.RawData())
}

func (s *server) blockStat(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	size, err := s.n.Store.Blockstore().GetSize(r.Context(), c)
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, BlockStat{CID: c.String(), Size: size})
}

func (s *server) carImport(w http.ResponseWriter, r *http.Request) {
	pin, err := boolParam(r, "pin", true)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	res, err := s.n.Store.ImportCAR(r.Context(), http.MaxBytesReader(w, r.Body, s.lim.MaxCAR), store.ImportOptions{Pin: pin})
	if err != nil {
		err = bodyFault(r, err)
		writeErr(w, status(err), err)
		return
	}
	out := ImportResult{Blocks: res.Blocks, Bytes: res.Bytes, Roots: []string{}}
	for _, c := range res.Roots {
		out.Roots = append(out.Roots, c.String())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) carExport(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	v, err := intParam(r, "version", 1)
	if err != nil || (v != 1 && v != 2) {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("version must be 1 or 2"))
		return
	}
	// ExportCAR checks the DAG is complete before writing a byte, so a
	// missing block still gets a proper error status.
	w.Header().Set("Content-Type", "application/vnd.ipld.car; version="+strconv.FormatInt(v, 10))
	cw := &lazyWriter{w: w}
	if err := s.n.Store.ExportCAR(r.Context(), cw, c, store.ExportOptions{Version: int(v)}); err != nil {
		if !cw.wrote {
			writeErr(w, status(err), err)
			return
		}
		panic(http.ErrAbortHandler)
	}
}

type lazyWriter struct {
	w     http.ResponseWriter
	wrote bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.wrote = true
	return l.w.Write(p)
}

func pinJSON(p store.Pin) Pin {
	t := "recursive"
	if p.Direct {
		t = "direct"
	}
	return Pin{CID: p.Cid.String(), Name: p.Name, Type: t, Created: p.Created}
}

func (s *server) pins(w http.ResponseWriter, r *http.Request) {
	ps, err := s.n.Store.Pins(r.Context())
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	out := []Pin{}
	for _, p := range ps {
		out = append(out, pinJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) pinAdd(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	direct, err := boolParam(r, "direct", false)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	name := r.URL.Query().Get("name")
	if err := s.n.Store.Pin(r.Context(), c, store.PinOptions{Name: name, Direct: direct}); err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, pinJSON(store.Pin{Cid: c, Name: name, Direct: direct, Created: time.Now().UTC()}))
}

func (s *server) pinFrom(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	peer, target := q.Get("peer"), q.Get("target")
	if peer == "" || target == "" {
		writeErr(w, http.StatusBadRequest, errors.New("pin-from needs peer= and target= (a CID or a store path)"))
		return
	}
	res, err := pinFrom(r.Context(), s.n, peer, target, q.Get("name"), nil)
	if err != nil {
		code := status(err)
		if errors.Is(err, store.ErrPeer) && !errors.Is(err, ErrPeerURL) {
			code = http.StatusBadGateway
		}
		writeErr(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) pinRm(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	if err := s.n.Store.Unpin(r.Context(), c); err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"unpinned": c.String()})
}

func (s *server) gc(w http.ResponseWriter, r *http.Request) {
	res, err := s.n.Store.GC(r.Context())
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) stat(w http.ResponseWriter, r *http.Request) {
	st, err := s.n.Store.Stat(r.Context())
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	env, err := io.ReadAll(http.MaxBytesReader(w, r.Body, attest.MaxEnvelopeSize))
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	if err := checkJSON(env); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("envelope: %w", err))
		return
	}
	p, err := s.n.Publisher().Publish(r.Context(), env)
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, PublishResult{ID: p.ID.String(), LogIndex: p.LogIndex, Existing: p.Existing})
}

func (s *server) logAppend(w http.ResponseWriter, r *http.Request) {
	entry, err := io.ReadAll(http.MaxBytesReader(w, r.Body, tlog.MaxEntrySize))
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	i, err := s.n.Log.Append(r.Context(), entry)
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, AppendResult{Index: i})
}
