package kubo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/ipfs/go-cid"
)

// ErrKubo is returned (wrapped) for errors reported by the Kubo node.
var ErrKubo = errors.New("kubo")

// Client talks to one Kubo RPC endpoint, e.g. http://127.0.0.1:5001.
type Client struct {
	base *url.URL
	http *http.Client
}

// New returns a client for the RPC API at rpcURL.
func New(rpcURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(rpcURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kubo RPC URL %q: want http(s)://host:port", rpcURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, http: hc}, nil
}

func (c *Client) post(ctx context.Context, path string, q url.Values, body io.Reader, ctype string) (*http.Response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKubo, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Message string }
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return nil, fmt.Errorf("%w: %s: %s", ErrKubo, path, e.Message)
		}
		return nil, fmt.Errorf("%w: %s: %s: %s", ErrKubo, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// ImportCAR streams a CAR into Kubo with `dag import --pin-roots` and
// returns the roots Kubo pinned. A root Kubo could not pin is an error.
func (c *Client) ImportCAR(ctx context.Context, car io.Reader) ([]cid.Cid, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", "dag.car")
		if err == nil {
			_, err = io.Copy(part, car)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	resp, err := c.post(ctx, "/api/v0/dag/import", url.Values{"pin-roots": {"true"}}, pr, mw.FormDataContentType())
	pr.Close()
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseImportResponse(resp.Body)
}

// parseImportResponse reads dag/import's streamed JSON answer.
func parseImportResponse(r io.Reader) ([]cid.Cid, error) {
	var roots []cid.Cid
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var ev struct {
			Root *struct {
				Cid struct {
					Slash string `json:"/"`
				}
				PinErrorMsg string
			}
			Message string // a streamed error
		}
		if err := dec.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			return roots, fmt.Errorf("%w: dag/import answer: %v", ErrKubo, err)
		}
		if ev.Message != "" {
			return roots, fmt.Errorf("%w: dag/import: %s", ErrKubo, ev.Message)
		}
		if ev.Root == nil {
			continue
		}
		r, err := cid.Decode(ev.Root.Cid.Slash)
		if err != nil {
			return roots, fmt.Errorf("%w: dag/import root %q: %v", ErrKubo, ev.Root.Cid.Slash, err)
		}
		if ev.Root.PinErrorMsg != "" {
			return roots, fmt.Errorf("%w: pin %s: %s", ErrKubo, r, ev.Root.PinErrorMsg)
		}
		roots = append(roots, r)
	}
	return roots, nil
}

// Pinned reports whether Kubo holds a recursive pin on c.
func (c *Client) Pinned(ctx context.Context, id cid.Cid) (bool, error) {
	resp, err := c.post(ctx, "/api/v0/pin/ls", url.Values{"arg": {id.String()}, "type": {"recursive"}}, nil, "")
	if err != nil {
		if strings.Contains(err.Error(), "not pinned") {
			return false, nil
		}
		return false, err
	}
	defer resp.Body.Close()
	var out struct {
		Keys map[string]struct{ Type string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return false, fmt.Errorf("%w: pin/ls answer: %v", ErrKubo, err)
	}
	for k, v := range out.Keys {
		if kc, err := cid.Decode(k); err == nil && kc.Hash().String() == id.Hash().String() && v.Type == "recursive" {
			return true, nil
		}
	}
	return false, nil
}
