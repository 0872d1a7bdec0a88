package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/cli"
	"github.com/agentix/agentix-store/store"
	"github.com/go-json-experiment/json"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Client is a Backend reaching a node through its daemon.
type Client struct {
	// Base is the daemon's base URL, e.g. http://127.0.0.1:7171.
	Base string
	// Token is the bearer token sent with writes.
	Token string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
	// Signer, when set, signs writes with an operator key (SignRequest)
	// instead of sending Token.
	Signer *attest.Signer
}

// Error is an error answered by the daemon.
type Error struct {
	Status  int
	Message string
	// Kind names the error's meaning when the daemon gave one (see
	// errKinds): Is matches its sentinel again.
	Kind string
}

func (e *Error) Error() string {
	return fmt.Sprintf("daemon: %s (HTTP %d)", e.Message, e.Status)
}

// Is maps daemon statuses to the store's sentinel errors.
func (e *Error) Is(target error) bool {
	if e.Kind != "" {
		for _, k := range errKinds {
			if k.kind == e.Kind && k.err == target {
				return true
			}
		}
		return false
	}
	switch e.Status {
	case http.StatusNotFound:
		return target == store.ErrNotFound
	case http.StatusInsufficientStorage:
		return target == store.ErrNoSpace
	}
	return false
}

// As makes an error of kind "usage" a *cli.UsageError (exit status 2, as
// when the command runs in-process).
func (e *Error) As(target any) bool {
	if p, ok := target.(**cli.UsageError); ok && e.Kind == "usage" {
		*p = &cli.UsageError{Msg: e.Error()}
		return true
	}
	return false
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Response, error) {
	u := strings.TrimSuffix(c.Base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var digest []byte
	if method != http.MethodGet && c.Signer != nil {
		// The signature covers the body's sha256: hash it first.
		if body == nil {
			body = bytes.NewReader(nil)
		}
		rs, ok := body.(io.ReadSeeker)
		if !ok {
			b, err := io.ReadAll(body)
			if err != nil {
				return nil, err
			}
			rs = bytes.NewReader(b)
		}
		h := sha256.New()
		if _, err := io.Copy(h, rs); err != nil {
			return nil, err
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		body, digest = rs, h.Sum(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	switch {
	case method == http.MethodGet:
	case c.Signer != nil:
		if err := SignRequest(req, c.Signer, digest, time.Now()); err != nil {
			return nil, err
		}
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach daemon at %s: %w", c.Base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e errBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error, Kind: e.Kind}
	}
	return resp, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, body io.Reader, out any) error {
	resp, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	// The daemon's answer is decoded strictly: exact-case member names,
	// no duplicates.
	if err := json.UnmarshalRead(io.LimitReader(resp.Body, 64<<20), out); err != nil {
		return fmt.Errorf("daemon answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Healthy reports whether a daemon answers at c.Base.
func (c *Client) Healthy(ctx context.Context) bool {
	resp, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

type progressReader struct {
	r io.Reader
	n int64
	f func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.f != nil && n > 0 {
		p.f(p.n)
	}
	return n, err
}

func (c *Client) Add(ctx context.Context, r io.Reader, o store.AddOptions) (AddResult, error) {
	q := url.Values{"pin": {strconv.FormatBool(o.Pin)}}
	if o.Chunker != "" {
		q.Set("chunker", o.Chunker)
	}
	var res AddResult
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/add", q, &progressReader{r: r, f: o.Progress}, &res)
	return res, err
}

func (c *Client) CatRange(ctx context.Context, id cid.Cid, off, n int64) (io.ReadCloser, error) {
	q := url.Values{"offset": {strconv.FormatInt(off, 10)}, "length": {strconv.FormatInt(n, 10)}}
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/cat/"+id.String(), q, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) PutBlock(ctx context.Context, b blocks.Block) error {
	// The codec travels as a multicodec name; the daemon re-derives the CID.
	q := url.Values{"codec": {codecName(b.Cid())}}
	var st BlockStat
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/blocks", q, bytes.NewReader(b.RawData()), &st); err != nil {
		return err
	}
	if st.CID != b.Cid().String() {
		return fmt.Errorf("daemon stored %s, want %s", st.CID, b.Cid())
	}
	return nil
}

func (c *Client) GetBlock(ctx context.Context, id cid.Cid) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/blocks/"+id.String(), nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, store.MaxBlockSize+1))
	if err != nil {
		return nil, err
	}
	// Trust nothing: the block must hash to its CID.
	got, err := id.Prefix().Sum(data)
	if err != nil || !got.Equals(id) {
		return nil, &store.CorruptBlockError{Cid: id}
	}
	return data, nil
}

func (c *Client) BlockSize(ctx context.Context, id cid.Cid) (int, error) {
	var st BlockStat
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/blocks/"+id.String()+"/stat", nil, nil, &st)
	return st.Size, err
}

func (c *Client) ImportCAR(ctx context.Context, r io.Reader, o store.ImportOptions) (ImportResult, error) {
	var res ImportResult
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/car", url.Values{"pin": {strconv.FormatBool(o.Pin)}}, &progressReader{r: r, f: o.Progress}, &res)
	return res, err
}

func (c *Client) ExportCAR(ctx context.Context, w io.Writer, id cid.Cid, o store.ExportOptions) error {
	v := o.Version
	if v == 0 {
		v = 1
	}
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/car/"+id.String(), url.Values{"version": {strconv.Itoa(v)}}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, &progressReader{r: resp.Body, f: o.Progress})
	return err
}

func (c *Client) Pin(ctx context.Context, id cid.Cid, o store.PinOptions) error {
	q := url.Values{"direct": {strconv.FormatBool(o.Direct)}}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	return c.doJSON(ctx, http.MethodPost, "/api/v1/pins/"+id.String(), q, nil, nil)
}

func (c *Client) PinFrom(ctx context.Context, peer, target, name string, _ func(int, int64)) (PinFromResult, error) {
	var res PinFromResult
	q := url.Values{"peer": {peer}, "target": {target}}
	if name != "" {
		q.Set("name", name)
	}
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/pin-from", q, nil, &res)
	return res, err
}

func (c *Client) Unpin(ctx context.Context, id cid.Cid) error {
	err := c.doJSON(ctx, http.MethodDelete, "/api/v1/pins/"+id.String(), nil, nil, nil)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return fmt.Errorf("%s: %w", id, store.ErrNotPinned)
	}
	return err
}

func (c *Client) Pins(ctx context.Context) ([]Pin, error) {
	var out []Pin
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/pins", nil, nil, &out)
	return out, err
}

func (c *Client) GC(ctx context.Context) (store.GCResult, error) {
	var res store.GCResult
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/gc", nil, nil, &res)
	return res, err
}

func (c *Client) Stat(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/stat", nil, nil, &st)
	return st, err
}

func (c *Client) LogAppend(ctx context.Context, entry []byte) (uint64, error) {
	var res AppendResult
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/log/append", nil, bytes.NewReader(entry), &res)
	return res.Index, err
}

func (c *Client) Publish(ctx context.Context, env []byte) (PublishResult, error) {
	var res PublishResult
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/attestations", nil, bytes.NewReader(env), &res)
	return res, err
}

func (c *Client) Close() error { return nil }
