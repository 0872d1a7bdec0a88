package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
)

// FetchOptions configure PinFrom.
type FetchOptions struct {
	// Name names the pin created when the DAG is complete.
	Name string
	// HTTP is the client used; nil means one with a 60 s idle timeout.
	HTTP *http.Client
	// Progress, when set, is called with the blocks and bytes received so
	// far in this call.
	Progress func(blocks int, bytes int64)
	// MaxAttempts bounds consecutive requests that bring no new block
	// before PinFrom gives up (default 5).
	MaxAttempts int
}

// FetchResult reports a PinFrom.
type FetchResult struct {
	Root cid.Cid `json:"-"`
	// Fetched and FetchedBytes count the blocks received in this call;
	// Present counts those that were already here (a resumed pin).
	Fetched      int   `json:"fetched"`
	FetchedBytes int64 `json:"fetched_bytes"`
	Present      int   `json:"present"`
	Requests     int   `json:"requests"`
}

// ErrPeer is returned (wrapped) when a peer answers with an error or sends
// a block that does not hash to its CID.
var ErrPeer = errors.New("peer")

func pendingKey(c cid.Cid) []byte {
	return append(append([]byte{}, kv.PrefixPending...), c.Bytes()...)
}

func (s *Store) pendingPins(ctx context.Context) ([]cid.Cid, error) {
	var out []cid.Cid
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = kv.PrefixPending
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := cid.Cast(it.Item().KeyCopy(nil)[len(kv.PrefixPending):])
			if err != nil {
				return fmt.Errorf("pending pin key: %w", err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// PinFrom pulls the DAG under root from a peer's trustless gateway
// (GET <peer>/ipfs/<cid>?format=car), verifies every block against its CID
// as it arrives, stores it, and pins root recursively once the DAG is
// complete.
//
// It is resumable: the root is recorded as a pending pin before the first
// request, blocks are stored as they are verified, and GC keeps the part
// already fetched. After an interruption (a dropped connection, a killed
// process), calling PinFrom again walks what is here and asks the peer only
// for the missing subtrees.
func (s *Store) PinFrom(ctx context.Context, peer string, root cid.Cid, o FetchOptions) (FetchResult, error) {
	res := FetchResult{Root: root}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 60 * time.Second}}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	base, err := url.Parse(strings.TrimSuffix(peer, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return res, fmt.Errorf("peer %q: want an http(s) URL of a node or gateway", peer)
	}
	release, err := kv.Claim(s.db, 4<<10)
	if err != nil {
		return res, fmt.Errorf("pin %s from %s: %w", root, peer, err)
	}
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(pendingKey(root), nil) })
	release()
	if err != nil {
		return res, err
	}
	fruitless := 0
	first := true
	for {
		missing, present, err := s.missing(ctx, root)
		if err != nil {
			return res, err
		}
		if first {
			res.Present = present
			first = false
		}
		if len(missing) == 0 {
			break
		}
		before := res.Fetched
		var lastErr error
		for _, c := range missing {
			if err := s.fetchCAR(ctx, o, base, c, &res); err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				lastErr = err
			}
		}
		if res.Fetched == before {
			fruitless++
			if fruitless >= o.MaxAttempts {
				if lastErr == nil {
					lastErr = fmt.Errorf("%w: %s sent none of the %d missing blocks", ErrPeer, peer, len(missing))
				}
				return res, fmt.Errorf("pin %s from %s: %w (progress is kept; run again to resume)", root, peer, lastErr)
			}
		} else {
			fruitless = 0
		}
	}
	if err := s.Pin(ctx, root, PinOptions{Name: o.Name}); err != nil {
		return res, err
	}
	return res, s.db.Update(func(txn *badger.Txn) error { return txn.Delete(pendingKey(root)) })
}

// missing walks the local part of the DAG under root and returns the roots
// of the subtrees not here, and the number of blocks present.
func (s *Store) missing(ctx context.Context, root cid.Cid) ([]cid.Cid, int, error) {
	var out []cid.Cid
	present := 0
	seen := map[string]bool{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c.KeyString()] {
			continue
		}
		seen[c.KeyString()] = true
		if c.Type() == cid.Raw {
			ok, err := s.bs.Has(ctx, c)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				out = append(out, c)
			} else {
				present++
			}
			continue
		}
		blk, err := s.bs.Get(ctx, c)
		if errors.Is(err, ErrNotFound) {
			out = append(out, c)
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		present++
		links, err := Links(blk)
		if err != nil {
			return nil, 0, err
		}
		stack = append(stack, links...)
	}
	return out, present, nil
}

// fetchCAR requests the subtree under c as a CAR and stores every block
// that verifies, in batches, until the stream ends or breaks.
func (s *Store) fetchCAR(ctx context.Context, o FetchOptions, base *url.URL, c cid.Cid, res *FetchResult) error {
	u := base.JoinPath("ipfs", c.String())
	u.RawQuery = "format=car&dag-scope=all"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.ipld.car")
	res.Requests++
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%w: GET %s: %s: %s", ErrPeer, u, resp.Status, strings.TrimSpace(string(msg)))
	}
	unlock := s.GCLock()
	defer unlock()
	br, err := carv2.NewBlockReader(bufio.NewReaderSize(resp.Body, 1<<20), carv2.ZeroLengthSectionAsEOF(true),
		// Every block is checked below, with an error naming its CID.
		carv2.WithTrustedCAR(true))
	if err != nil {
		return fmt.Errorf("%w: CAR from %s: %v", ErrPeer, u, err)
	}
	var batch []blocks.Block
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// Verified blocks are kept even when the fetch is being cancelled:
		// that is what makes it resumable.
		if err := s.bs.PutMany(context.WithoutCancel(ctx), batch); err != nil {
			return err
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	for {
		blk, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A broken stream: keep what verified, the caller resumes.
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("%w: CAR from %s broke off: %v", ErrPeer, u, err)
		}
		if len(blk.RawData()) > MaxBlockSize {
			flush()
			return fmt.Errorf("%w: block %s from %s is larger than %d bytes", ErrPeer, blk.Cid(), u, MaxBlockSize)
		}
		got, err := blk.Cid().Prefix().Sum(blk.RawData())
		if err != nil || !got.Equals(blk.Cid()) {
			flush()
			return fmt.Errorf("%w: block %s from %s does not hash to its CID: %w", ErrPeer, blk.Cid(), u, &CorruptBlockError{Cid: blk.Cid()})
		}
		batch = append(batch, blk)
		batchBytes += len(blk.RawData())
		res.Fetched++
		res.FetchedBytes += int64(len(blk.RawData()))
		if o.Progress != nil {
			o.Progress(res.Fetched, res.FetchedBytes)
		}
		if batchBytes >= 4<<20 || len(batch) >= 512 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
