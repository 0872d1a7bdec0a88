package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
	"github.com/go-json-experiment/json"
	"github.com/ipfs/go-cid"
)

// PinFromResult answers a pin from a peer.
type PinFromResult struct {
	Root string `json:"root"`
	store.FetchResult
	// Closure is set when the pinned DAG is a Nix closure: it was verified
	// (every NAR hash, completeness) and indexed, so this node's /nix/
	// binary cache serves it.
	Closure *ClosureInfo `json:"closure,omitempty"`
}

// ClosureInfo describes a verified closure.
type ClosureInfo struct {
	CID      string `json:"cid"`
	Root     string `json:"root"`
	Paths    int    `json:"paths"`
	NarBytes int64  `json:"nar_bytes"`
}

// ErrPeerURL is a peer address that is not an http(s) URL with a host.
var ErrPeerURL = errors.New("peer URL")

// CheckPeerURL refuses a peer address other than http:// or https:// with a
// host, naming what is wrong (file://, ftp://, a bare path, …).
func CheckPeerURL(peer string) error {
	u, err := url.Parse(peer)
	if err != nil {
		return fmt.Errorf("%w %q: %v", ErrPeerURL, peer, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return fmt.Errorf("%w %q: no scheme (want http:// or https://)", ErrPeerURL, peer)
	default:
		return fmt.Errorf("%w %q: scheme %q is not supported (want http or https)", ErrPeerURL, peer, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w %q: no host", ErrPeerURL, peer)
	}
	return nil
}

// peerClosure is one closure of a peer's GET /api/v1/closures answer
// (closure.ClosureSummary as the peer encodes it).
type peerClosure struct {
	CID      string    `json:"cid"`
	Root     string    `json:"root"`
	Imported time.Time `json:"imported"`
	c        cid.Cid
}

// decodePeerClosures parses a peer's closures list strictly: exact-case
// member names, no name twice in an object (not even in another case).
func decodePeerClosures(b []byte) ([]peerClosure, error) {
	if err := checkJSON(b); err != nil {
		return nil, err
	}
	var list []peerClosure
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	for i := range list {
		c, err := cid.Decode(list[i].CID)
		if err != nil {
			return nil, fmt.Errorf("closure %d: cid %q: %v", i, list[i].CID, err)
		}
		list[i].c = c
	}
	return list, nil
}

// ResolvePeerClosure asks a peer node which closure it holds for a store
// path (GET <peer>/api/v1/closures?root=PATH).
func ResolvePeerClosure(ctx context.Context, peer, storePath string) (cid.Cid, error) {
	if err := CheckPeerURL(peer); err != nil {
		return cid.Undef, err
	}
	u := strings.TrimSuffix(peer, "/") + "/api/v1/closures?" + url.Values{"root": {storePath}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return cid.Undef, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", store.ErrPeer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cid.Undef, fmt.Errorf("%w: GET %s: %s", store.ErrPeer, u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: closures from %s: %v", store.ErrPeer, peer, err)
	}
	list, err := decodePeerClosures(b)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: closures from %s: %v", store.ErrPeer, peer, err)
	}
	if len(list) == 0 {
		return cid.Undef, fmt.Errorf("%w: %s holds no closure of %s", store.ErrNotFound, peer, storePath)
	}
	// The newest import of that root.
	best := list[0]
	for _, c := range list[1:] {
		if c.Imported.After(best.Imported) {
			best = c
		}
	}
	if best.Root != storePath {
		return cid.Undef, fmt.Errorf("%w: %s answered closure %s of %q for %s", store.ErrPeer, peer, best.CID, best.Root, storePath)
	}
	return best.c, nil
}

// pinFrom pulls target (a CID, or a store path the peer resolves to a
// closure) from peer, pins it, and indexes it when it is a closure.
func pinFrom(ctx context.Context, n *node.Node, peer, target, name string, progress func(int, int64)) (PinFromResult, error) {
	var res PinFromResult
	if err := CheckPeerURL(peer); err != nil {
		return res, err
	}
	var root cid.Cid
	isPath := strings.HasPrefix(target, "/")
	if isPath && !strings.HasPrefix(target, "/ipfs/") {
		c, err := ResolvePeerClosure(ctx, peer, target)
		if err != nil {
			return res, err
		}
		root = c
	} else {
		c, err := store.ParseCID(target)
		if err != nil {
			return res, err
		}
		root = c
	}
	if name == "" && isPath {
		name = target
	}
	fr, err := n.Store.PinFrom(ctx, peer, root, store.FetchOptions{Name: name, Progress: progress})
	res.FetchResult = fr
	res.Root = root.String()
	if err != nil {
		return res, err
	}
	if !isPath {
		return res, nil
	}
	// Verify and index the closure where its blocks now are: read once,
	// every block hash-checked and every NAR checked against its narHash
	// (not exported and imported again as a CAR).
	vr, err := closure.IndexStored(ctx, n.Store, n.DB, root)
	if err != nil {
		return res, fmt.Errorf("closure %s from %s: %w", root, peer, err)
	}
	res.Closure = &ClosureInfo{CID: vr.Closure.String(), Root: vr.Root, Paths: vr.Paths, NarBytes: vr.NarBytes}
	return res, nil
}

func (s *server) closures(w http.ResponseWriter, r *http.Request) {
	out, err := Closures(s.n, r.URL.Query().Get("root"))
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
