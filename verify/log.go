package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"

	"github.com/agentix/agentix-store/attest"
)

// LogSource reads a C2SP tlog-tiles log: its checkpoint, tiles and entry
// bundles (Tessera's client fetchers satisfy it).
type LogSource interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// OpenLogSource returns a source for target: an http(s) URL of the log's
// tlog-tiles root (for a node daemon, http://host:port/log/), or a
// directory of static tiles.
func OpenLogSource(target string, hc *http.Client) (LogSource, error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("log URL %q: %w", target, err)
		}
		f, err := client.NewHTTPFetcher(u, hc)
		if err != nil {
			return nil, err
		}
		if hc == nil {
			hc = http.DefaultClient
		}
		return &httpLogSource{HTTPFetcher: f, root: u, hc: hc}, nil
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("log %q is neither an http(s) URL nor a directory of tiles", target)
	}
	return client.FileFetcher{Root: target}, nil
}

// httpLogSource is Tessera's HTTP fetcher, with the reason a server gives
// for refusing an entry bundle (a node refuses one whose stored entries no
// longer match their tiles, naming the entry) carried into the error.
type httpLogSource struct {
	*client.HTTPFetcher
	root *url.URL
	hc   *http.Client
}

func (s *httpLogSource) ReadEntryBundle(ctx context.Context, i uint64, p uint8) ([]byte, error) {
	b, err := s.HTTPFetcher.ReadEntryBundle(ctx, i, p)
	if err == nil || errors.Is(err, os.ErrNotExist) || ctx.Err() != nil {
		return b, err
	}
	u, uerr := s.root.Parse(layout.EntriesPath(i, p))
	if uerr != nil {
		return nil, err
	}
	req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if rerr != nil {
		return nil, err
	}
	resp, rerr := s.hc.Do(req)
	if rerr != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK || len(bytes.TrimSpace(msg)) == 0 {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s", err, strings.ToValidUTF8(string(bytes.TrimSpace(msg)), "?"))
}

// LogOptions configure CheckLog.
type LogOptions struct {
	// State, when set, is consulted and updated: the checkpoint must be
	// consistent with what this auditor accepted before.
	State *State
	// Full replays every entry: each must match its leaf hash in the
	// level-0 tiles, each attestation must verify with the policy (an entry
	// that is not a DSSE envelope is counted as a raw entry, proven only
	// as bytes), and their leaf hashes must give the checkpoint's root.
	Full bool
	// Workers verify entries in parallel (0: GOMAXPROCS).
	Workers int
	// MaxFindings bounds the entry failures listed (0: 100); all are
	// counted.
	MaxFindings int
}

// LogResult is what CheckLog measured.
type LogResult struct {
	Origin      string  `json:"origin"`
	Size        uint64  `json:"size"`
	Root        []byte  `json:"root"`
	Previous    uint64  `json:"previousSize"`
	Replayed    uint64  `json:"replayed,omitempty"`
	BadEntries  uint64  `json:"badEntries,omitempty"`
	RawEntries  uint64  `json:"rawEntries,omitempty"`
	EntriesPerS float64 `json:"entriesPerSecond,omitempty"`
}

// CheckLog checks a log's current checkpoint against the policy (the log's
// key, witness quorum) and against the checkpoints this auditor accepted
// before (o.State): same size means same root (ErrSplitView), a smaller
// size is a rollback (ErrRollback), a larger one must be proven consistent
// with the largest accepted (ErrInconsistent). With o.Full every entry is
// replayed (see Replay). The checkpoint is remembered only when everything
// held.
func CheckLog(ctx context.Context, src LogSource, p *attest.Policy, target string, o LogOptions) (*Report, *LogResult) {
	r := NewReport("log", target)
	res := &LogResult{}
	r.Details["log"] = res
	raw, err := src.ReadCheckpoint(ctx)
	if err != nil {
		r.Fail("checkpoint", nil, "", unavailable("read checkpoint: %v", err))
		return r.Done(), res
	}
	cp, witnesses, err := p.VerifyCheckpoint(raw)
	if err != nil {
		r.Fail("checkpoint", nil, "", err)
		return r.Done(), res
	}
	res.Origin, res.Size, res.Root = cp.Origin, cp.Size, cp.Hash
	r.Prove("checkpoint of %s at size %d (root %x) signed by the log's key; %d witness cosignature(s)", cp.Origin, cp.Size, cp.Hash, len(witnesses))

	var ls *LogState
	if o.State != nil {
		if ls, err = o.State.Load(cp.Origin); err != nil {
			r.Fail("state", nil, "", unavailable("%v", err))
			return r.Done(), res
		}
		checkHistory(ctx, r, src, ls, cp.Size, cp.Hash, res)
	}
	if o.Full && len(r.Failures) == 0 {
		Replay(ctx, r, src, p, cp.Size, cp.Hash, o, res)
	}
	r.Done()
	if r.OK && ls != nil {
		ls.Accept(Accepted{Size: cp.Size, Root: cp.Hash, Note: string(raw), Accepted: time.Now().UTC()})
		if err := o.State.Save(ls); err != nil {
			r.Fail("state", nil, "", unavailable("%v", err))
			return r.Done(), res
		}
		r.Prove("checkpoint at size %d remembered (%d accepted checkpoint(s) of %s)", cp.Size, len(ls.Accepted), cp.Origin)
	}
	return r, res
}

// checkHistory compares the checkpoint (size, root) with the remembered
// state of its log.
func checkHistory(ctx context.Context, r *Report, src LogSource, ls *LogState, size uint64, root []byte, res *LogResult) {
	if a, ok := ls.At(size); ok && !bytes.Equal(a.Root, root) {
		r.Fail("consistency", nil, "", errf(ErrSplitView, "%s at size %d: served root %x, accepted root %x on %s", ls.Origin, size, root, a.Root, a.Accepted.Format(time.RFC3339)))
		return
	}
	if ls.Latest == nil {
		r.Prove("first checkpoint of %s seen by this auditor (trust on first use)", ls.Origin)
		return
	}
	last := *ls.Latest
	res.Previous = last.Size
	switch {
	case size < last.Size:
		r.Fail("consistency", nil, "", errf(ErrRollback, "%s served size %d after this auditor accepted size %d", ls.Origin, size, last.Size))
	case size == last.Size:
		r.Prove("same checkpoint as the last accepted (size %d)", size)
	default:
		pb, err := client.NewProofBuilder(ctx, size, src.ReadTile)
		if err != nil {
			r.Fail("consistency", nil, "", unavailable("tiles for a consistency proof %d→%d: %v", last.Size, size, err))
			return
		}
		prf, err := pb.ConsistencyProof(ctx, last.Size, size)
		if err != nil {
			r.Fail("consistency", nil, "", unavailable("consistency proof %d→%d: %v", last.Size, size, err))
			return
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, last.Size, size, prf, last.Root, root); err != nil {
			r.Fail("consistency", nil, "", errf(ErrInconsistent, "%s: size %d (root %x) is not an extension of accepted size %d (root %x): %v", ls.Origin, size, root, last.Size, last.Root, err))
			return
		}
		r.Prove("consistent with the last accepted checkpoint (size %d → %d)", last.Size, size)
	}
}

// replayJob is one entry bundle's worth of entries.
type replayJob struct {
	first   uint64
	entries [][]byte
	tile    []byte // the level-0 tile's hashes from entry first on, as served
	hashes  [][]byte
	bad     []entryErr
	raw     uint64
	unmatch []uint64 // entries whose leaf hash differs from the tile's
	done    chan struct{}
}

// isEnvelope reports whether a log entry claims to be a DSSE envelope: a
// JSON object that names a payloadType. Anything else was appended raw (as
// `log append` does) and proves only its own bytes.
func isEnvelope(e []byte) bool {
	t := bytes.TrimLeft(e, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && bytes.Contains(t, []byte(`"payloadType"`))
}

type entryErr struct {
	i   uint64
	err error
}

// Replay fetches every entry of a log of the given size, verifies each as an
// attestation (attest.VerifyEnvelopeBytes with the policy) on o.Workers
// goroutines, and recomputes the root from the entries' leaf hashes with a
// compact range, which must equal root (ErrRootMismatch). Each entry that
// fails is reported with its index.
//
// Its steps: fetchJobs reads the entry bundles and their level-0 tiles in
// log order, replayJob.check verifies one bundle's entries (in parallel),
// replayTally.add folds the checked bundles back in log order, and
// reportReplay judges the tally against the checkpoint.
func Replay(ctx context.Context, r *Report, src LogSource, p *attest.Policy, size uint64, root []byte, o LogOptions, res *LogResult) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	maxF := o.MaxFindings
	if maxF <= 0 {
		maxF = 100
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan *replayJob, workers*2)
	order := make(chan *replayJob, workers*4)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.check(p)
				close(j.done)
			}
		}()
	}
	var fetchErr error
	go func() {
		defer close(order)
		defer close(jobs)
		fetchErr = fetchJobs(ctx, src, size, workers, order, jobs)
	}()

	t := newReplayTally(maxF)
	for j := range order {
		<-j.done
		t.add(r, j, res)
	}
	wg.Wait()
	res.Replayed = t.rng.End()
	if el := time.Since(start).Seconds(); el > 0 {
		res.EntriesPerS = float64(res.Replayed) / el
	}
	reportReplay(r, size, root, t, fetchErr, res)
}

// fetchJobs reads the entry bundles covering entries [0, size) with their
// level-0 tiles and sends each, as a job, first to order (log order) and
// then to jobs (the workers). It stops at the first bundle it cannot read
// and returns why; the caller closes both channels.
func fetchJobs(ctx context.Context, src LogSource, size uint64, workers int, order, jobs chan<- *replayJob) error {
	sizeFn := func(context.Context) (uint64, error) { return size, nil }
	for b, err := range client.EntryBundles(ctx, uint(workers), sizeFn, src.ReadEntryBundle, 0, size) {
		if err != nil {
			return err
		}
		j, err := bundleJob(ctx, src, b)
		if err != nil {
			return err
		}
		select {
		case order <- j:
		case <-ctx.Done():
			return nil
		}
		jobs <- j
	}
	return nil
}

// bundleJob returns the job of one fetched entry bundle: the entries its
// range covers and the matching hashes of its level-0 tile. A tile too short
// for the range is dropped, so that every entry of the bundle is then
// reported as unmatched; a bundle with fewer entries than its range is an
// error naming the bundle.
func bundleJob(ctx context.Context, src LogSource, b client.Bundle) (*replayJob, error) {
	ri := b.RangeInfo
	var eb api.EntryBundle
	if err := eb.UnmarshalText(b.Data); err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", ri.Index, err)
	}
	es := eb.Entries
	if int(ri.First)+int(ri.N) > len(es) {
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want at least %d", ri.Index, len(es), ri.First+ri.N)
	}
	es = es[ri.First : ri.First+ri.N]
	tile, err := src.ReadTile(ctx, 0, ri.Index, ri.Partial)
	if err != nil {
		return nil, fmt.Errorf("level-0 tile %d: %w", ri.Index, err)
	}
	if lo, hi := int(ri.First)*32, int(ri.First+ri.N)*32; len(tile) >= hi {
		tile = tile[lo:hi]
	} else {
		tile = nil
	}
	return &replayJob{first: ri.Index*256 + uint64(ri.First), entries: es, tile: tile, done: make(chan struct{})}, nil
}

// check hashes each entry of j as an RFC 6962 leaf, records the entries
// whose hash differs from the tile's (or that the tile does not cover),
// counts the entries that are not envelopes as raw, and verifies the others
// with the policy, recording each failure with its index.
func (j *replayJob) check(p *attest.Policy) {
	j.hashes = make([][]byte, len(j.entries))
	for k, e := range j.entries {
		j.hashes[k] = rfc6962.DefaultHasher.HashLeaf(e)
		if o := k * 32; len(j.tile) < o+32 || !bytes.Equal(j.hashes[k], j.tile[o:o+32]) {
			j.unmatch = append(j.unmatch, j.first+uint64(k))
		}
		if !isEnvelope(e) {
			j.raw++
			continue
		}
		if _, err := attest.VerifyEnvelopeBytes(e, p); err != nil {
			j.bad = append(j.bad, entryErr{j.first + uint64(k), err})
		}
	}
}

// replayTally is what the checked jobs add up to, in log order: the compact
// range over their leaf hashes, and at most maxF of the entries that differ
// from their tiles and of the failed entries (all failures are counted).
type replayTally struct {
	maxF      int
	rng       *compact.Range
	appendErr error
	unmatched []uint64
	listed    int
}

func newReplayTally(maxF int) *replayTally {
	return &replayTally{maxF: maxF, rng: (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)}
}

// add folds in the next checked job: its raw and bad entries are counted in
// res, and the bad ones listed in r up to the bound.
func (t *replayTally) add(r *Report, j *replayJob, res *LogResult) {
	res.RawEntries += j.raw
	if len(t.unmatched) < t.maxF {
		t.unmatched = append(t.unmatched, j.unmatch[:min(len(j.unmatch), t.maxF-len(t.unmatched))]...)
	}
	for _, h := range j.hashes {
		if err := t.rng.Append(h, nil); err != nil && t.appendErr == nil {
			t.appendErr = err
		}
	}
	for _, be := range j.bad {
		res.BadEntries++
		if t.listed < t.maxF {
			t.listed++
			r.Fail("replay", ptr(be.i), "", be.err)
		}
	}
}

// reportReplay judges a replay of a log of the given size and root: the
// failures not listed, an incomplete read, then the root the entries hash
// to. When that root is wrong the entries that differ from their tiles are
// to blame; when it is right, the tiles that differ from the entries are.
func reportReplay(r *Report, size uint64, root []byte, t *replayTally, fetchErr error, res *LogResult) {
	if res.BadEntries > uint64(t.listed) {
		r.Fail("replay", nil, "", fmt.Errorf("%d more entries failed verification (not listed)", res.BadEntries-uint64(t.listed)))
	}
	if t.appendErr != nil {
		r.Fail("replay", nil, "", t.appendErr)
		return
	}
	if fetchErr != nil {
		r.Fail("replay", ptr(t.rng.End()), "", unavailable("read entries: %v", fetchErr))
		return
	}
	if t.rng.End() != size {
		r.Fail("replay", nil, "", unavailable("read %d entries, checkpoint has %d", t.rng.End(), size))
		return
	}
	got, err := t.rng.GetRootHash(nil)
	if err != nil {
		r.Fail("replay", nil, "", err)
		return
	}
	if size == 0 {
		got = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !bytes.Equal(got, root) {
		// The entries are wrong: those that differ from the tiles are
		// named, the first of them first.
		for _, i := range t.unmatched {
			r.Fail("replay", ptr(i), "", errf(ErrEntryMismatch, "entry %d does not hash to its leaf hash in level-0 tile %d", i, i/256))
		}
		r.Fail("replay", nil, "", errf(ErrRootMismatch, "%d entries hash to %x, checkpoint root is %x", size, got, root))
		return
	}
	r.Prove("replayed all %d entries: the root recomputed from them is the checkpoint's", size)
	if len(t.unmatched) > 0 {
		// The entries are proven by the root, so the tiles are wrong.
		for _, i := range t.unmatched {
			r.Fail("replay", ptr(i), "", errf(ErrEntryMismatch, "level-0 tile %d serves a wrong leaf hash for entry %d, which the checkpoint proves", i/256, i))
		}
	} else {
		r.Prove("every entry matches its leaf hash in the level-0 tiles")
	}
	switch n := size - res.RawEntries; {
	case res.BadEntries > 0:
	case res.RawEntries == 0:
		r.Prove("every entry is an attestation that verifies with the policy (signatures, threshold, statement, schema)")
	default:
		r.Prove("every one of the %d attestation(s) verifies with the policy (signatures, threshold, statement, schema); %d raw entr(ies) are not attestations and prove only their bytes", n, res.RawEntries)
	}
}
