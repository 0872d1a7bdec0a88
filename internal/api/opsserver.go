package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/agentix/agentix-store/chain"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/cli"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
	sjson "github.com/go-json-experiment/json"
)

// errKinds name the errors whose meaning must survive the API: the daemon
// answers {"error": msg, "kind": k} with the status, and the client's
// *Error matches the sentinel again (errors.Is), or is a usage error
// (errors.As *cli.UsageError) for kind "usage".
var errKinds = []struct {
	kind   string
	err    error
	status int
}{
	{"not-append-only", audit.ErrNotAppendOnly, http.StatusConflict},
	{"genesis-recorded", node.ErrGenesisRecorded, http.StatusConflict},
	{"not-git-flake", chain.ErrNotGitFlake, http.StatusBadRequest},
	{"nar-hash-mismatch", closure.ErrHashMismatch, http.StatusConflict},
	{"bad-nar", closure.ErrBadNAR, http.StatusConflict},
	{"incomplete-closure", closure.ErrIncomplete, http.StatusConflict},
	{"bad-closure-record", closure.ErrBadRecord, http.StatusConflict},
	{"closure-not-found", closure.ErrNotFound, http.StatusNotFound},
	{"not-found", store.ErrNotFound, http.StatusNotFound},
	{"log-not-found", tlog.ErrNotFound, http.StatusNotFound},
	{"not-initialised", node.ErrNotInitialised, http.StatusInternalServerError},
}

// errKind returns the kind and status of err.
func errKind(err error) (string, int) {
	var ue *cli.UsageError
	if errors.As(err, &ue) {
		return "usage", http.StatusBadRequest
	}
	if errors.Is(err, attest.ErrNoSignature) || errors.Is(err, attest.ErrMalformedEnvelope) {
		return "", http.StatusBadRequest
	}
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			return k.kind, k.status
		}
	}
	return "", status(err)
}

type errBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// writeOpErr answers err with its status and kind.
func writeOpErr(w http.ResponseWriter, err error) {
	k, code := errKind(err)
	writeJSON(w, code, errBody{Error: err.Error(), Kind: k})
}

// streamLine is one line of a long operation's NDJSON answer: progress
// lines, then one line with the result, the error (with its status and
// kind), or both (a refused ingest still reports what it found).
type streamLine struct {
	Progress *Progress `json:"progress,omitempty"`
	Result   any       `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
	Kind     string    `json:"kind,omitempty"`
	Status   int       `json:"status,omitempty"`
}

// Progress is how far a long operation is.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// NDJSON is the media type of a long operation's answer.
const NDJSON = "application/x-ndjson"

// streamer writes a long operation's answer. Nothing is sent before the
// first progress line, so an operation that fails at once gets a plain
// error answer with its status.
type streamer struct {
	w       http.ResponseWriter
	mu      sync.Mutex
	started bool
	last    time.Time
	enc     *json.Encoder
}

func (s *streamer) start() {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", NDJSON)
		s.w.WriteHeader(http.StatusOK)
		s.enc = json.NewEncoder(s.w)
	}
}

func (s *streamer) progress(done, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); done < total && now.Sub(s.last) < 100*time.Millisecond {
		return
	} else {
		s.last = now
	}
	s.start()
	s.enc.Encode(streamLine{Progress: &Progress{Done: done, Total: total}})
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *streamer) finish(result any, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started && (err != nil && isNil(result)) {
		writeOpErr(s.w, err)
		return
	}
	s.start()
	l := streamLine{}
	if !isNil(result) {
		l.Result = result
	}
	if err != nil {
		l.Error = err.Error()
		l.Kind, l.Status = errKind(err)
	}
	s.enc.Encode(l)
}

func isNil(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case *IngestView:
		return t == nil
	case *ClosureImported:
		return t == nil
	}
	return false
}

// readRequest decodes a JSON request body strictly (exact-case member
// names, no duplicates, no unknown members) into v.
// maxOpRequest bounds the JSON request of a node operation (an ingest's
// carries its policies).
const maxOpRequest = 4 << 20

func readRequest(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOpRequest))
	if err != nil {
		writeErr(w, status(err), err)
		return false
	}
	if err := decodeRequest(b, v); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{Error: "request: " + ErrJSON.Error() + ": " + err.Error(), Kind: "usage"})
		return false
	}
	return true
}

// decodeRequest decodes b strictly into v: exact-case member names, no
// duplicates, no unknown members.
func decodeRequest(b []byte, v any) error {
	return sjson.Unmarshal(b, v, sjson.RejectUnknownMembers(true))
}

func (s *server) ingest(w http.ResponseWriter, r *http.Request) {
	var req IngestRequest
	if !readRequest(w, r, &req) {
		return
	}
	st := &streamer{w: w}
	res, err := Ingest(r.Context(), s.n, req, st.progress)
	st.finish(res, err)
}

func (s *server) closureImport(w http.ResponseWriter, r *http.Request) {
	var req ClosureImportRequest
	if !readRequest(w, r, &req) {
		return
	}
	st := &streamer{w: w}
	res, err := ImportClosure(r.Context(), s.n, req, st.progress)
	st.finish(res, err)
}

func (s *server) closureImportCAR(w http.ResponseWriter, r *http.Request) {
	res, err := ImportClosureCAR(r.Context(), s.n, http.MaxBytesReader(w, r.Body, s.lim.MaxCAR))
	if err != nil {
		writeOpErr(w, bodyFault(r, err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) closureEntries(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	res, err := ClosureEntries(r.Context(), s.n, c)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) closureVerify(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	res, err := VerifyClosure(r.Context(), s.n, c)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) closureExport(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	// A closure that does not load fails before a byte is written.
	if _, _, err := closure.Load(r.Context(), s.n.Store, c); err != nil {
		writeOpErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.ipld.car; version=1")
	cw := &lazyWriter{w: w}
	if err := closure.ExportCAR(r.Context(), s.n.Store, c, cw); err != nil {
		if !cw.wrote {
			writeOpErr(w, err)
			return
		}
		panic(http.ErrAbortHandler)
	}
}

func (s *server) closureDiff(w http.ResponseWriter, r *http.Request) {
	a, err := store.ParseCID(r.PathValue("a"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	b, err := store.ParseCID(r.PathValue("b"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	d, err := closure.Diff(r.Context(), s.n.Store, a, b)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) closureAttest(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	var req RunningRequest
	if !readRequest(w, r, &req) {
		return
	}
	signer, err := nodeSigner(s.n)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	res, err := AttestRunning(r.Context(), s.n, c, signer, req)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// GenesisRequest names the workspace (a path on the node's machine).
type GenesisRequest struct {
	Workspace string `json:"workspace"`
}

func (s *server) genesis(w http.ResponseWriter, r *http.Request) {
	var req GenesisRequest
	if !readRequest(w, r, &req) {
		return
	}
	g, err := s.n.RecordGenesis(r.Context(), req.Workspace)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *server) bundle(w http.ResponseWriter, r *http.Request) {
	c, ok := pathCID(w, r)
	if !ok {
		return
	}
	withCAR, err := boolParam(r, "car", false)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	b, err := Bundle(r.Context(), s.n, c, withCAR)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *server) logCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := LogCheckpoint(r.Context(), s.n)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func uintParam(r *http.Request, name string) (uint64, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	u, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, cli.Usagef("%s=%q: not a non-negative integer", name, v)
	}
	return u, true, nil
}

func (s *server) logEntries(w http.ResponseWriter, r *http.Request) {
	from, _, err := uintParam(r, "from")
	if err != nil {
		writeOpErr(w, err)
		return
	}
	to, set, err := uintParam(r, "to")
	if err != nil {
		writeOpErr(w, err)
		return
	}
	t := int64(-1)
	if set {
		t = int64(to)
	}
	es, err := LogEntries(r.Context(), s.n, from, t)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, es)
}

func (s *server) logInclusion(w http.ResponseWriter, r *http.Request) {
	var req InclusionRequest
	var err error
	var set bool
	if req.Index, set, err = uintParam(r, "index"); err != nil {
		writeOpErr(w, err)
		return
	}
	if lh := r.URL.Query().Get("leaf_hash"); lh != "" {
		h, err := hex.DecodeString(lh)
		if err != nil || len(h) != 32 {
			writeOpErr(w, cli.Usagef("leaf_hash %q is not 64 hex digits", lh))
			return
		}
		req.LeafHash = h
	} else if !set {
		writeOpErr(w, cli.Usagef("inclusion needs index= or leaf_hash="))
		return
	}
	if req.Size, _, err = uintParam(r, "size"); err != nil {
		writeOpErr(w, err)
		return
	}
	res, err := LogInclusion(r.Context(), s.n, req)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) logConsistency(w http.ResponseWriter, r *http.Request) {
	old, _, err := uintParam(r, "old")
	if err != nil {
		writeOpErr(w, err)
		return
	}
	nw, _, err := uintParam(r, "new")
	if err != nil {
		writeOpErr(w, err)
		return
	}
	res, err := LogConsistency(r.Context(), s.n, old, nw)
	if err != nil {
		writeOpErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
