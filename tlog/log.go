package tlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// MaxEntrySize is the largest entry the log accepts: tlog-tiles entry bundles
// prefix each entry with a big-endian uint16 length.
const MaxEntrySize = 1<<16 - 1

// Defaults for the sequencer's group commit.
const (
	DefaultMaxBatch = 1024
	DefaultMaxWait  = time.Millisecond
)

// Errors returned by the log. Each is returned wrapped with the detail that
// makes it specific; test with errors.Is.
var (
	ErrClosed         = errors.New("log is closed")
	ErrEntryTooLarge  = errors.New("entry too large")
	ErrNotFound       = errors.New("not found")
	ErrBadRange       = errors.New("index or size out of range")
	ErrBroken         = errors.New("log storage failed; reopen the log")
	ErrNoSigner       = errors.New("options: Signer is required")
	ErrBadOrigin      = errors.New("options: origin does not match the signer's name rules")
	ErrCorrupt        = errors.New("log storage is corrupt")
	ErrCheckpointSig  = errors.New("checkpoint signature does not verify")
	ErrCheckpointForm = errors.New("malformed checkpoint")
)

// CorruptEntryError reports a stored entry whose bytes no longer hash to
// its leaf hash in the level-0 tile: the database changed under the log.
// The entry is never returned or served. It matches ErrCorrupt with
// errors.Is. The caller should stop serving the log and restore the data
// directory from a replica; the tiles and checkpoints still prove what the
// entry was.
type CorruptEntryError struct {
	Index uint64 // the entry's index
}

func (e *CorruptEntryError) Error() string {
	return fmt.Sprintf("%v: entry %d does not match its leaf hash in level-0 tile %d", ErrCorrupt, e.Index, e.Index/tileWidth)
}

// Is reports ErrCorrupt.
func (e *CorruptEntryError) Is(target error) bool { return target == ErrCorrupt }

// WitnessConfig names one witness the log asks to cosign its checkpoints.
type WitnessConfig struct {
	// URL is the witness's tlog-witness prefix; the request goes to
	// URL + "/add-checkpoint".
	URL string
	// Verifier checks the witness's cosignature (cosignature/v1); its Name is
	// the witness's name.
	Verifier note.Verifier
}

// Options configure a Log.
type Options struct {
	// Origin is the log's origin line. Empty means Signer.Name(), which is
	// the node's name when the key was made by agentix-store init.
	Origin string
	// Signer signs checkpoints (Ed25519 note key). Required.
	Signer note.Signer
	// MaxBatch bounds the number of entries committed by one fsync.
	// Zero means DefaultMaxBatch.
	MaxBatch int
	// MaxWait bounds how long the sequencer lingers for more entries once it
	// has some. It lingers only when the previous batch held more than one
	// entry, so a lone writer never waits for it. Zero means DefaultMaxWait;
	// negative means never linger.
	MaxWait time.Duration
	// Witnesses are asked to cosign every new checkpoint.
	Witnesses []WitnessConfig
	// WitnessTimeout bounds one request to a witness. Zero means 10s.
	WitnessTimeout time.Duration
	// HTTPClient is used for witness requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// WitnessSigner is the node's cosignature/v1 key, used when this node
	// witnesses its peers' logs. Nil disables the add-checkpoint endpoint.
	WitnessSigner note.Signer
	// Peers maps a peer log's origin to the verifier of its checkpoints;
	// only these logs are witnessed.
	Peers map[string]note.Verifier
	// OnBatch, when set, is called by the sequencer after each batch commit
	// (entries in the batch, time to write and fsync it, and its error), for
	// metrics. It must not block.
	OnBatch func(entries int, commit time.Duration, err error)
	// Logf receives diagnostic lines (witness failures); nil discards them.
	Logf func(format string, args ...any)
}

// Log is an append-only RFC 6962 log stored in badger. It is safe for
// concurrent use.
type Log struct {
	db     *badger.DB
	opts   Options
	origin string
	hasher *rfc6962.Hasher

	reqs chan *appendReq
	quit chan struct{}
	done chan struct{}

	closeOnce sync.Once
	closed    atomic.Bool
	broken    atomic.Pointer[error]

	// Sequencer-owned state (only the sequencer goroutine touches these
	// after Open).
	rng       *compact.Range
	edge      map[uint64][]byte // tile level -> hashes of the rightmost, partial tile
	lastBatch int

	cur atomic.Pointer[SignedCheckpoint] // latest committed checkpoint

	// The leaf-hash indexer (leafindex.go).
	indexed atomic.Uint64 // entries below this are in the leaf-hash index
	idxMu   sync.Mutex    // serialises indexUpTo
	idxKick chan struct{}
	idxQuit chan struct{}
	idxDone chan struct{}

	witnessMu  sync.Mutex // serialises the witness server's read-check-write
	wit        *witnessClient
	cpUpdateMu sync.Mutex // serialises rewriting the stored checkpoint note
}

var rf = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// Open opens the log kept in db under kv.PrefixLog, recovering its state, and
// starts the sequencer. If the stored checkpoint is older than the stored
// tree, a new checkpoint is signed before Open returns.
func Open(db *badger.DB, o Options) (*Log, error) {
	if o.Signer == nil {
		return nil, ErrNoSigner
	}
	if o.Origin == "" {
		o.Origin = o.Signer.Name()
	}
	if o.Origin == "" || bytes.ContainsAny([]byte(o.Origin), "\n") {
		return nil, fmt.Errorf("%w: %q", ErrBadOrigin, o.Origin)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.WitnessTimeout <= 0 {
		o.WitnessTimeout = 10 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	l := &Log{
		db:     db,
		opts:   o,
		origin: o.Origin,
		hasher: rfc6962.DefaultHasher,
		reqs:   make(chan *appendReq, 4*o.MaxBatch),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		edge:   map[uint64][]byte{},

		idxKick: make(chan struct{}, 1),
		idxQuit: make(chan struct{}),
		idxDone: make(chan struct{}),
	}
	if err := l.recover(); err != nil {
		return nil, err
	}
	if err := l.recoverIndexed(l.rng.End()); err != nil {
		return nil, fmt.Errorf("recover leaf-hash index: %w", err)
	}
	go l.runIndexer()
	if len(o.Witnesses) > 0 {
		l.wit = newWitnessClient(l)
	}
	go l.sequence()
	if l.wit != nil {
		l.wit.notify()
	}
	return l, nil
}

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.origin }

// Close stops the sequencer. Entries already being committed are committed
// and acknowledged; entries still queued fail with ErrClosed. Close does not
// close the database.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
		<-l.done
		close(l.idxQuit)
		<-l.idxDone
		if l.wit != nil {
			l.wit.stop()
		}
	})
	return nil
}

type appendReq struct {
	entry []byte
	leaf  []byte // RFC 6962 leaf hash of entry
	done  chan appendRes
}

// newAppendReq copies entry and computes its RFC 6962 leaf hash,
// SHA-256(0x00 || entry), in the caller's goroutine, so that the sequencer's
// serial work per entry stays small. Entry and hash share one allocation.
func newAppendReq(entry []byte) *appendReq {
	buf := make([]byte, 1+len(entry)+hashSize)
	copy(buf[1:], entry)
	n := 1 + len(entry)
	h := sha256.Sum256(buf[:n])
	copy(buf[n:], h[:])
	return &appendReq{
		entry: buf[1:n:n],
		leaf:  buf[n : n+hashSize : n+hashSize],
		done:  make(chan appendRes, 1),
	}
}

type appendRes struct {
	index uint64
	err   error
}

// Append adds entry to the log and returns its index once the entry is
// durable (written and fsynced). The index is final: the entry is part of
// every checkpoint from then on. If ctx ends first, Append returns ctx.Err()
// and the entry may or may not have been appended.
func (l *Log) Append(ctx context.Context, entry []byte) (uint64, error) {
	if len(entry) > MaxEntrySize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(entry), MaxEntrySize)
	}
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if e := l.broken.Load(); e != nil {
		return 0, fmt.Errorf("%w: %v", ErrBroken, *e)
	}
	r := newAppendReq(entry)
	select {
	case l.reqs <- r:
	case <-l.quit:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.index, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Indexed returns how many entries, from index 0, the leaf-hash index
// covers; lookups by leaf hash scan the tiles of the entries beyond it.
func (l *Log) Indexed() uint64 { return l.indexed.Load() }

// Size returns the size of the latest checkpoint.
func (l *Log) Size() uint64 { return l.cur.Load().Size }

// Checkpoint returns the latest signed checkpoint, with any witness
// cosignatures gathered so far.
func (l *Log) Checkpoint(ctx context.Context) (SignedCheckpoint, error) {
	if err := ctx.Err(); err != nil {
		return SignedCheckpoint{}, err
	}
	return *l.cur.Load(), nil
}

// Entry returns the entry at index i.
func (l *Log) Entry(ctx context.Context, i uint64) ([]byte, error) {
	if size := l.Size(); i >= size {
		return nil, fmt.Errorf("%w: entry %d, log size %d", ErrNotFound, i, size)
	}
	var out []byte
	err := l.db.View(func(txn *badger.Txn) error {
		return scanCheckedEntries(txn, i, i+1, func(_ uint64, v []byte) error {
			out = bytes.Clone(v)
			return nil
		})
	})
	if err == nil && out == nil {
		err = fmt.Errorf("%w: entry %d missing below size %d", ErrCorrupt, i, l.Size())
	}
	return out, err
}

// Entries returns the entries with indices in [from, to), which must lie
// within the latest checkpoint.
func (l *Log) Entries(ctx context.Context, from, to uint64) ([][]byte, error) {
	size := l.Size()
	if from > to || to > size {
		return nil, fmt.Errorf("%w: entries [%d, %d) of a log of size %d", ErrBadRange, from, to, size)
	}
	out := make([][]byte, 0, to-from)
	err := l.db.View(func(txn *badger.Txn) error {
		return scanCheckedEntries(txn, from, to, func(_ uint64, v []byte) error {
			out = append(out, bytes.Clone(v))
			return ctx.Err()
		})
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != to-from {
		return nil, fmt.Errorf("%w: found %d entries in [%d, %d)", ErrCorrupt, len(out), from, to)
	}
	return out, nil
}

// LeafHash returns the RFC 6962 leaf hash of entry.
func LeafHash(entry []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(entry) }

// EmptyRoot returns the RFC 6962 root hash of the empty tree.
func EmptyRoot() []byte { return rfc6962.DefaultHasher.EmptyRoot() }
