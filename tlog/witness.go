package tlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Witness errors (C2SP tlog-witness). WitnessError carries the HTTP status.
var (
	ErrWitnessMalformed = errors.New("malformed add-checkpoint request")      // 400
	ErrWitnessBadSig    = errors.New("checkpoint signature does not verify")  // 403
	ErrWitnessUnknown   = errors.New("unknown log origin")                    // 404
	ErrWitnessConflict  = errors.New("old size does not match the witness's") // 409
	ErrWitnessBadProof  = errors.New("consistency proof does not verify")     // 422
	ErrNotWitness       = errors.New("this node does not witness")            // 404
)

// WitnessError is what AddCheckpoint returns on refusal.
type WitnessError struct {
	Status int    // HTTP status per tlog-witness
	Latest uint64 // with 409: the size the witness has cosigned for this origin
	Err    error  // one of the ErrWitness… sentinels, wrapped with detail
}

func (e *WitnessError) Error() string { return e.Err.Error() }
func (e *WitnessError) Unwrap() error { return e.Err }

func werr(status int, sentinel error, format string, args ...any) *WitnessError {
	return &WitnessError{Status: status, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// AddCheckpointRequest is the body of a tlog-witness add-checkpoint request.
type AddCheckpointRequest struct {
	Old        uint64
	Proof      [][]byte
	Checkpoint []byte // signed note
}

// Marshal encodes the request per tlog-witness: "old N", one base64 proof
// hash per line, a blank line, then the signed checkpoint.
func (r AddCheckpointRequest) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.Old)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ParseAddCheckpointRequest parses an add-checkpoint body. Errors wrap
// ErrWitnessMalformed.
func ParseAddCheckpointRequest(body []byte) (AddCheckpointRequest, error) {
	var req AddCheckpointRequest
	bad := func(format string, args ...any) (AddCheckpointRequest, error) {
		return AddCheckpointRequest{}, fmt.Errorf("%w: %s", ErrWitnessMalformed, fmt.Sprintf(format, args...))
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return bad("no old-size line")
	}
	ns, ok := strings.CutPrefix(string(line), "old ")
	if !ok {
		return bad("first line %q is not \"old <size>\"", trunc(line))
	}
	if ns == "" || (len(ns) > 1 && ns[0] == '0') {
		return bad("old size %q is not a canonical decimal", ns)
	}
	old, err := strconv.ParseUint(ns, 10, 64)
	if err != nil {
		return bad("old size %q: %v", ns, err)
	}
	req.Old = old
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return bad("no blank line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(req.Proof) == 63 {
			return bad("more than 63 proof lines")
		}
		h, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil || len(h) != hashSize {
			return bad("proof line %d %q is not a base64 32-byte hash", len(req.Proof)+1, trunc(line))
		}
		req.Proof = append(req.Proof, h)
	}
	if len(rest) == 0 {
		return bad("no checkpoint")
	}
	req.Checkpoint = rest
	return req, nil
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func witnessKey(origin string) []byte {
	return append(bytes.Clone(kv.PrefixWitness), origin...)
}

// WitnessedSize returns the size and root hash this node last cosigned for
// origin (0 and nil if none).
func (l *Log) WitnessedSize(origin string) (uint64, []byte, error) {
	var size uint64
	var root []byte
	err := l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(witnessKey(origin))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) != 8+hashSize {
			return fmt.Errorf("%w: witness record for %q of %d bytes", ErrCorrupt, origin, len(v))
		}
		size, root = binary.BigEndian.Uint64(v), v[8:]
		return nil
	})
	return size, root, err
}

// AddCheckpoint is the witness side of C2SP tlog-witness: it checks req
// against the last checkpoint this node cosigned for the same origin and, if
// the log is append-only, records and cosigns it. It returns the cosignature
// line(s) ("— name base64\n"). Refusals are *WitnessError.
func (l *Log) AddCheckpoint(ctx context.Context, req AddCheckpointRequest) ([]byte, error) {
	if l.opts.WitnessSigner == nil {
		return nil, werr(http.StatusNotFound, ErrNotWitness, "no witness key configured")
	}
	text, _, ok := bytes.Cut(req.Checkpoint, []byte("\n\n"))
	if !ok {
		return nil, werr(http.StatusBadRequest, ErrWitnessMalformed, "checkpoint is not a signed note")
	}
	origin, _, _ := bytes.Cut(text, []byte("\n"))
	v, ok := l.opts.Peers[string(origin)]
	if !ok {
		return nil, werr(http.StatusNotFound, ErrWitnessUnknown, "%q", trunc(origin))
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(v))
	if err != nil {
		var unk *note.UnverifiedNoteError
		var inv *note.InvalidSignatureError
		if errors.As(err, &unk) || errors.As(err, &inv) {
			return nil, werr(http.StatusForbidden, ErrWitnessBadSig, "log %q: %v", origin, err)
		}
		return nil, werr(http.StatusBadRequest, ErrWitnessMalformed, "checkpoint note: %v", err)
	}
	cp, err := parseCheckpointBody([]byte(n.Text))
	if err != nil {
		return nil, werr(http.StatusBadRequest, ErrWitnessMalformed, "%v", err)
	}
	if req.Old > cp.Size {
		return nil, werr(http.StatusBadRequest, ErrWitnessMalformed, "old size %d > checkpoint size %d", req.Old, cp.Size)
	}
	l.witnessMu.Lock()
	defer l.witnessMu.Unlock()
	size, root, err := l.WitnessedSize(cp.Origin)
	if err != nil {
		return nil, &WitnessError{Status: http.StatusInternalServerError, Err: err}
	}
	if req.Old != size {
		e := werr(http.StatusConflict, ErrWitnessConflict, "log %q: request says old size %d, witness has %d", cp.Origin, req.Old, size)
		e.Latest = size
		return nil, e
	}
	switch {
	case req.Old == cp.Size:
		if len(req.Proof) != 0 {
			return nil, werr(http.StatusUnprocessableEntity, ErrWitnessBadProof, "non-empty proof between equal sizes %d", cp.Size)
		}
		if root != nil && !bytes.Equal(root, cp.Hash) {
			e := werr(http.StatusConflict, ErrWitnessConflict, "log %q: two different roots at size %d", cp.Origin, cp.Size)
			e.Latest = size
			return nil, e
		}
	case req.Old == 0:
		if len(req.Proof) != 0 {
			return nil, werr(http.StatusUnprocessableEntity, ErrWitnessBadProof, "non-empty proof from size 0")
		}
	default:
		if err := proof.VerifyConsistency(l.hasher, req.Old, cp.Size, req.Proof, root, cp.Hash); err != nil {
			return nil, werr(http.StatusUnprocessableEntity, ErrWitnessBadProof, "log %q from %d to %d: %v", cp.Origin, req.Old, cp.Size, err)
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, l.opts.WitnessSigner)
	if err != nil {
		return nil, &WitnessError{Status: http.StatusInternalServerError, Err: fmt.Errorf("cosign: %w", err)}
	}
	if cp.Size > size || root == nil {
		rec := binary.BigEndian.AppendUint64(nil, cp.Size)
		rec = append(rec, cp.Hash...)
		if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(witnessKey(cp.Origin), rec) }); err != nil {
			return nil, &WitnessError{Status: http.StatusInternalServerError, Err: err}
		}
		if err := l.db.Sync(); err != nil {
			return nil, &WitnessError{Status: http.StatusInternalServerError, Err: err}
		}
	}
	return signed[len(n.Text)+1:], nil
}

func (l *Log) serveAddCheckpoint(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "add-checkpoint takes POST, not %s", r.Method)
		return
	}
	if l.opts.WitnessSigner == nil {
		httpError(w, http.StatusNotFound, "%v", ErrNotWitness)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWitnessRequest))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, "request body over %d bytes", MaxWitnessRequest)
			return
		}
		httpError(w, http.StatusBadRequest, "read request: %v", err)
		return
	}
	req, err := ParseAddCheckpointRequest(body)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	sigs, err := l.AddCheckpoint(r.Context(), req)
	if err != nil {
		var we *WitnessError
		if !errors.As(err, &we) {
			httpError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		if we.Status == http.StatusConflict {
			w.Header().Set("Content-Type", "text/x.tlog.size")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, "%d\n", we.Latest)
			return
		}
		httpError(w, we.Status, "%v", we.Err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(sigs)
}

// witnessClient asks the configured witnesses to cosign the latest
// checkpoint whenever it changes, and attaches their cosignatures to it.
type witnessClient struct {
	l     *Log
	kick  chan struct{}
	quit  chan struct{}
	wg    sync.WaitGroup
	known map[int]uint64 // witness index -> size it has cosigned for us
}

func newWitnessClient(l *Log) *witnessClient {
	c := &witnessClient{l: l, kick: make(chan struct{}, 1), quit: make(chan struct{}), known: map[int]uint64{}}
	c.wg.Add(1)
	go c.run()
	return c
}

func (c *witnessClient) notify() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *witnessClient) stop() {
	close(c.quit)
	c.wg.Wait()
}

func (c *witnessClient) run() {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-c.quit; cancel() }()
	for {
		select {
		case <-c.kick:
		case <-c.quit:
			return
		}
		cp := *c.l.cur.Load()
		var lines [][]byte
		for i := range c.l.opts.Witnesses {
			sig, err := c.cosign(ctx, i, cp)
			if err != nil {
				c.l.opts.Logf("log: witness %s: %v", c.l.opts.Witnesses[i].URL, err)
				continue
			}
			lines = append(lines, sig)
		}
		if len(lines) > 0 {
			if err := c.l.attachCosignatures(cp, lines); err != nil {
				c.l.opts.Logf("log: store cosignatures: %v", err)
			}
		}
	}
}

// cosign runs the add-checkpoint exchange with witness i, retrying once with
// the old size the witness reports on 409 Conflict.
func (c *witnessClient) cosign(ctx context.Context, i int, cp SignedCheckpoint) ([]byte, error) {
	wc := c.l.opts.Witnesses[i]
	// Send only the log's own signature: witnesses cosign the log's note.
	text, _, _ := bytes.Cut(cp.Note, []byte("\n\n"))
	own, err := note.Sign(&note.Note{Text: string(text) + "\n"}, c.l.opts.Signer)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		old := c.known[i]
		if old > cp.Size {
			return nil, fmt.Errorf("witness has size %d, beyond our checkpoint %d", old, cp.Size)
		}
		pf, err := c.l.ConsistencyProof(ctx, old, cp.Size)
		if err != nil {
			return nil, err
		}
		body := AddCheckpointRequest{Old: old, Proof: pf, Checkpoint: own}.Marshal()
		rctx, cancel := context.WithTimeout(ctx, c.l.opts.WitnessTimeout)
		hreq, err := http.NewRequestWithContext(rctx, http.MethodPost, strings.TrimSuffix(wc.URL, "/")+"/add-checkpoint", bytes.NewReader(body))
		if err != nil {
			cancel()
			return nil, err
		}
		resp, err := c.l.opts.HTTPClient.Do(hreq)
		if err != nil {
			cancel()
			return nil, err
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		if err != nil {
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			signed := append(bytes.Clone(own), rb...)
			n, err := note.Open(signed, note.VerifierList(wc.Verifier))
			if err != nil || len(n.Sigs) != 1 {
				return nil, fmt.Errorf("cosignature does not verify with %s: %v", wc.Verifier.Name(), err)
			}
			c.known[i] = cp.Size
			return []byte(fmt.Sprintf("— %s %s\n", n.Sigs[0].Name, n.Sigs[0].Base64)), nil
		case http.StatusConflict:
			sz, err := strconv.ParseUint(strings.TrimSpace(string(rb)), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("409 with unreadable size %q", trunc(rb))
			}
			c.known[i] = sz
		default:
			return nil, fmt.Errorf("%s: %s", resp.Status, trunc(bytes.TrimSpace(rb)))
		}
	}
	return nil, errors.New("witness kept answering 409 Conflict")
}

// attachCosignatures appends cosignature lines to the stored checkpoint if
// it is still the latest.
func (l *Log) attachCosignatures(cp SignedCheckpoint, lines [][]byte) error {
	l.cpUpdateMu.Lock()
	defer l.cpUpdateMu.Unlock()
	cur := l.cur.Load()
	if cur.Size != cp.Size || !bytes.Equal(cur.Note, cp.Note) {
		return nil // superseded; the next round cosigns the new one
	}
	n := bytes.Clone(cur.Note)
	for _, line := range lines {
		if !bytes.Contains(n, line) {
			n = append(n, line...)
		}
	}
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(keyCP, n) }); err != nil {
		return err
	}
	next := *cur
	next.Note = n
	l.cur.Store(&next)
	return nil
}
