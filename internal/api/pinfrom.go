package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/store"
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

// ResolvePeerClosure asks a peer node which closure it holds for a store
// path (GET <peer>/api/v1/closures?root=PATH).
func ResolvePeerClosure(ctx context.Context, peer, storePath string) (cid.Cid, error) {
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
	var list []struct {
		CID      string    `json:"cid"`
		Root     string    `json:"root"`
		Imported time.Time `json:"imported"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list); err != nil {
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
	c, err := cid.Decode(best.CID)
	if err != nil || best.Root != storePath {
		return cid.Undef, fmt.Errorf("%w: %s answered closure %q of %q for %s", store.ErrPeer, peer, best.CID, best.Root, storePath)
	}
	return c, nil
}

// pinFrom pulls target (a CID, or a store path the peer resolves to a
// closure) from peer, pins it, and indexes it when it is a closure.
func pinFrom(ctx context.Context, n *node.Node, peer, target, name string, progress func(int, int64)) (PinFromResult, error) {
	var res PinFromResult
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
	// Verify and index the closure from the blocks now here.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(n.Store.ExportCAR(ctx, pw, root, store.ExportOptions{})) }()
	vr, err := closure.ImportCAR(ctx, n.Store, n.DB, pr)
	pr.Close()
	if err != nil {
		return res, fmt.Errorf("closure %s from %s: %w", root, peer, err)
	}
	res.Closure = &ClosureInfo{CID: vr.Closure.String(), Root: vr.Root, Paths: vr.Paths, NarBytes: vr.NarBytes}
	return res, nil
}

func (s *server) closures(w http.ResponseWriter, r *http.Request) {
	list, err := closure.List(s.n.DB)
	if err != nil {
		writeErr(w, status(err), err)
		return
	}
	out := []closure.ClosureSummary{}
	root := r.URL.Query().Get("root")
	for _, c := range list {
		if root == "" || c.Root == root {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
