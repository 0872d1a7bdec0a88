package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-json-experiment/json"
)

// A recording is what an audit of a live node read, saved in a directory
// so that the same audit runs again offline: `agentix-verify node URL
// --save DIR` records, `agentix-verify node DIR` replays. Every answer is
// kept byte for byte (checkpoint, tiles, attestation envelopes, records,
// patch bytes, source NARs, closure CARs), so the offline audit checks the
// same signatures, proofs and hashes and trusts the recording no more than
// it trusted the node. An answer the recording lacks (an auditor state that
// asks for other tiles, say) is "could not check".
//
// Layout: DIR/index.json maps each request ("/path?query") to the file,
// status and content type of its answer; DIR/<sha256 of the request> holds
// the body.

// RecordingIndex is a recording's index.json.
type RecordingIndex struct {
	Version int                        `json:"version"`
	Base    string                     `json:"base"` // the node's URL when recorded
	Answers map[string]RecordingAnswer `json:"answers"`
}

// RecordingAnswer is one recorded answer.
type RecordingAnswer struct {
	File        string `json:"file"`
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
}

const recordingIndex = "index.json"

// ErrNotRecorded: a replayed audit asked for something the recording does
// not hold. It is an ErrUnavailable.
var ErrNotRecorded = fmt.Errorf("%w: not in the recording", ErrUnavailable)

func requestKey(r *http.Request) string {
	k := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		k += "?" + r.URL.RawQuery
	}
	return k
}

// Recorder is an http.RoundTripper that passes GET requests to Next and
// saves every answer into Dir. Call Close to write the index.
type Recorder struct {
	Dir  string
	Base string
	Next http.RoundTripper // nil: http.DefaultTransport

	mu  sync.Mutex
	idx RecordingIndex
}

// NewRecorder creates dir (which must not hold a recording yet).
func NewRecorder(dir, base string) (*Recorder, error) {
	if _, err := os.Stat(filepath.Join(dir, recordingIndex)); err == nil {
		return nil, fmt.Errorf("%s already holds a recording", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Recorder{Dir: dir, Base: base, idx: RecordingIndex{Version: 1, Base: base, Answers: map[string]RecordingAnswer{}}}, nil
}

func (rec *Recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	next := rec.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	key := requestKey(r)
	sum := sha256.Sum256([]byte(key))
	file := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(rec.Dir, file), body, 0o644); err != nil {
		return nil, fmt.Errorf("record %s: %w", key, err)
	}
	rec.mu.Lock()
	rec.idx.Answers[key] = RecordingAnswer{File: file, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	rec.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Close writes the recording's index.
func (rec *Recorder) Close() error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	b, err := json.Marshal(rec.idx, json.Deterministic(true))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(rec.Dir, recordingIndex), b, 0o644)
}

// Replayer is an http.RoundTripper that answers from a recording.
type Replayer struct {
	dir string
	idx RecordingIndex
}

// IsRecording reports whether dir holds a recording.
func IsRecording(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, recordingIndex))
	return err == nil && fi.Mode().IsRegular()
}

// OpenRecording reads the recording in dir (strictly: exact member names,
// no repeats).
func OpenRecording(dir string) (*Replayer, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordingIndex))
	if err != nil {
		return nil, err
	}
	rp := &Replayer{dir: dir}
	if err := json.Unmarshal(b, &rp.idx, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("recording %s: %w", dir, err)
	}
	if rp.idx.Version != 1 {
		return nil, fmt.Errorf("recording %s: version %d, want 1", dir, rp.idx.Version)
	}
	for k, a := range rp.idx.Answers {
		if len(a.File) != 64 || strings.Trim(a.File, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("recording %s: answer to %s names file %q", dir, k, a.File)
		}
	}
	return rp, nil
}

// Base is the URL of the node the recording was made from.
func (rp *Replayer) Base() string { return rp.idx.Base }

func (rp *Replayer) RoundTrip(r *http.Request) (*http.Response, error) {
	key := requestKey(r)
	a, ok := rp.idx.Answers[key]
	if !ok || r.Method != http.MethodGet {
		return nil, fmt.Errorf("%w: %s %s", ErrNotRecorded, r.Method, key)
	}
	body, err := os.ReadFile(filepath.Join(rp.dir, a.File))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (file %s missing)", ErrNotRecorded, key, a.File)
	}
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if a.ContentType != "" {
		h.Set("Content-Type", a.ContentType)
	}
	return &http.Response{StatusCode: a.Status, Status: fmt.Sprintf("%d %s", a.Status, http.StatusText(a.Status)), Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}
