package store

import (
	"context"
	"errors"
	"sync"

	"github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Options configure a Store.
type Options struct {
	// SyncWrites makes every Put/PutMany durable (fsync) before it returns.
	SyncWrites bool
	// NoVerifyOnRead turns off re-hashing blocks on Get. Verification is on
	// by default: a corrupted block yields a *CorruptBlockError, never bytes.
	NoVerifyOnRead bool
	// PackThreshold is the smallest block written to a pack file instead of
	// badger (see pack.go): 0 means DefaultPackThreshold, a negative value
	// keeps every block in badger. In-memory databases never use packs.
	PackThreshold int
	// NoDirectIO writes pack files through the page cache instead of with
	// O_DIRECT. It is the automatic fallback where O_DIRECT is refused
	// (tmpfs, non-Linux systems); setting it forces it.
	NoDirectIO bool
}

// Store is the node's block store with UnixFS, CAR, pins and GC on top.
// It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	opts Options
	bs   *Blockstore

	// gcMu is held for reading by every operation that writes blocks which
	// are not yet reachable from a pin or root (add, CAR import), and for
	// writing by GC. An add's blocks are thus never collected mid-add.
	gcMu sync.RWMutex

	rootsMu sync.Mutex
	roots   map[string]RootSource

	// heldMu guards held: the CIDs of every open Hold (see hold.go).
	heldMu sync.Mutex
	held   map[string]*heldRef
}

// RootSource reports CIDs that GC must treat as recursively pinned, for
// packages above store (the log's entries, attestations, closures).
type RootSource func(ctx context.Context) ([]cid.Cid, error)

// ErrNotFound is returned (wrapped) when a block is not in the store.
var ErrNotFound = errors.New("block not found")

// New returns a Store on db. The caller keeps ownership of db and closes it
// after the Store is no longer used.
func New(db *badger.DB, opts Options) *Store {
	s := &Store{db: db, opts: opts, roots: map[string]RootSource{}}
	s.bs = NewBlockstore(db, opts)
	s.bs.owner = s
	return s
}

// Blockstore returns the boxo blockstore over the node's database.
func (s *Store) Blockstore() *Blockstore { return s.bs }

// Get returns the block c, checked against its CID (see Blockstore.Get), so
// that a Store is a BlockGetter.
func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) { return s.bs.Get(ctx, c) }

// DB returns the underlying database.
func (s *Store) DB() *badger.DB { return s.db }

// GCLock protects blocks written until the returned function is called from
// being garbage collected. Every writer of not-yet-pinned blocks holds it,
// and must make them reachable (a pin, a Hold) before calling unlock. It is
// not reentrant: a caller holding it must not call anything that takes it
// (Add, Pin, ImportCAR, a Hold's methods) — a GC waiting for the lock would
// deadlock both. A write that spans several such calls uses a Hold instead.
func (s *Store) GCLock() (unlock func()) {
	s.gcMu.RLock()
	return s.gcMu.RUnlock
}

// RegisterRoots adds a named source of GC roots. Registering a name again
// replaces the earlier source.
func (s *Store) RegisterRoots(name string, src RootSource) {
	s.rootsMu.Lock()
	defer s.rootsMu.Unlock()
	s.roots[name] = src
}

// MaxBlockSize is the largest block accepted from outside (block put, CAR
// import): 2 MiB, the limit IPFS implementations agree on.
const MaxBlockSize = 2 << 20
