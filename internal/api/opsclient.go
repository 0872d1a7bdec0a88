package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/cli"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/ipfs/go-cid"
)

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// maxStreamLine bounds one line of a long operation's answer.
const maxStreamLine = 64 << 20

// doStream runs a long operation: it reports each progress line and
// decodes the final line's result into out. A final error line becomes an
// *Error with the status and kind the daemon gave; a result given with it
// (a refused ingest's report) is decoded too.
func (c *Client) doStream(ctx context.Context, path string, req any, progress func(done, total int64), out any) error {
	body, err := jsonBody(req)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := readStream(resp.Body, progress, out); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		return fmt.Errorf("daemon answer to POST %s: %w", path, err)
	}
	return nil
}

// readStream reads a long operation's NDJSON answer (see streamLine) from r.
func readStream(r io.Reader, progress func(done, total int64), out any) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return errors.New("ended without a result")
		}
		if err != nil {
			return err
		}
		var l struct {
			Progress *Progress      `json:"progress"`
			Result   jsontext.Value `json:"result"`
			Error    string         `json:"error"`
			Kind     string         `json:"kind"`
			Status   int            `json:"status"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return err
		}
		if l.Progress != nil {
			if progress != nil {
				progress(l.Progress.Done, l.Progress.Total)
			}
			continue
		}
		if len(l.Result) > 0 {
			if err := json.Unmarshal(l.Result, out); err != nil {
				return fmt.Errorf("result: %w", err)
			}
		}
		if l.Error != "" {
			return &Error{Status: l.Status, Message: l.Error, Kind: l.Kind}
		}
		if len(l.Result) == 0 {
			return errors.New("a line with neither progress, result nor error")
		}
		return nil
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxStreamLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxStreamLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(bytes.TrimSpace(buf)) > 0 {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(buf)) == 0 {
			buf = buf[:0]
			continue
		}
		return buf, nil
	}
}

// Ingest returns the report with the error of a refused (tampered)
// version, as Local does.
func (c *Client) Ingest(ctx context.Context, req IngestRequest, progress func(done, total int64)) (*IngestView, error) {
	var res IngestView
	err := c.doStream(ctx, "/api/v1/ingest", req, progress, &res)
	if err != nil && res.Workspace == "" {
		return nil, err
	}
	return &res, err
}

func (c *Client) ClosureImport(ctx context.Context, req ClosureImportRequest, progress func(done, total int64)) (*ClosureImported, error) {
	var res ClosureImported
	if err := c.doStream(ctx, "/api/v1/closures/import", req, progress, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) ClosureImportCAR(ctx context.Context, r io.Reader) (*ClosureVerified, error) {
	var res ClosureVerified
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/closures/import-car", nil, r, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) Closures(ctx context.Context) ([]ClosureSummary, error) {
	out := []ClosureSummary{}
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/closures", nil, nil, &out)
	return out, err
}

func (c *Client) ClosureEntries(ctx context.Context, id cid.Cid) ([]ClosureEntry, error) {
	var out []ClosureEntry
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/closures/"+id.String(), nil, nil, &out)
	return out, err
}

func (c *Client) ClosureVerify(ctx context.Context, id cid.Cid) (*ClosureVerified, error) {
	var res ClosureVerified
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/closures/"+id.String()+"/verify", nil, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) ClosureExport(ctx context.Context, w io.Writer, id cid.Cid) error {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/closures/"+id.String()+"/car", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

func (c *Client) ClosureDiff(ctx context.Context, a, b cid.Cid) (*closure.DiffResult, error) {
	var d closure.DiffResult
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/closures/"+a.String()+"/diff/"+b.String(), nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ErrSignerRemote: through the daemon the node signs with its own key; a
// private key is never sent.
var ErrSignerRemote = errors.New("through the daemon the node signs with its own attestation key (a private key is never sent): drop --key, or stop the daemon to sign with another key")

func (c *Client) AttestRunning(ctx context.Context, id cid.Cid, signer *attest.Signer, req RunningRequest) (*RunningResult, error) {
	if signer != nil {
		return nil, &cli.UsageError{Msg: ErrSignerRemote.Error()}
	}
	body, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var res RunningResult
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/closures/"+id.String()+"/attest", nil, body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) RecordGenesis(ctx context.Context, ws string) (*node.Genesis, error) {
	body, err := jsonBody(GenesisRequest{Workspace: ws})
	if err != nil {
		return nil, err
	}
	var g node.Genesis
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/genesis", nil, body, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

func (c *Client) Attestations(ctx context.Context, q attest.Query) ([]attest.Record, error) {
	v := url.Values{}
	for k, s := range map[string]string{"subject": q.Subject, "sha256": q.SHA256, "name": q.Name, "predicateType": q.PredicateType, "signer": q.Signer} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	out := []attest.Record{}
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/attestations", v, nil, &out)
	return out, err
}

func (c *Client) Bundle(ctx context.Context, id cid.Cid, withCAR bool) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/bundles/"+id.String(), url.Values{"car": {strconv.FormatBool(withCAR)}}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<30))
}

func (c *Client) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	var cp Checkpoint
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/log/checkpoint", nil, nil, &cp); err != nil {
		return nil, err
	}
	return &cp, nil
}

func (c *Client) LogEntries(ctx context.Context, from uint64, to int64) ([]LogEntry, error) {
	v := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if to >= 0 {
		v.Set("to", strconv.FormatInt(to, 10))
	}
	out := []LogEntry{}
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/log/entries", v, nil, &out)
	return out, err
}

func (c *Client) Inclusion(ctx context.Context, req InclusionRequest) (*Inclusion, error) {
	v := url.Values{}
	if req.LeafHash != nil {
		v.Set("leaf_hash", hex.EncodeToString(req.LeafHash))
	} else {
		v.Set("index", strconv.FormatUint(req.Index, 10))
	}
	if req.Size != 0 {
		v.Set("size", strconv.FormatUint(req.Size, 10))
	}
	var res Inclusion
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/log/inclusion", v, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) Consistency(ctx context.Context, old, nw uint64) (*Consistency, error) {
	var res Consistency
	v := url.Values{"old": {strconv.FormatUint(old, 10)}, "new": {strconv.FormatUint(nw, 10)}}
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/log/consistency", v, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
