package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/agentix/agentix-store/tlog"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Node is an opened data directory.
type Node struct {
	Dir    string
	Config *Config
	DB     *badger.DB
	Store  *store.Store
	Log    *tlog.Log
	// Attest indexes the node's published attestations (by subject,
	// predicate type and signer).
	Attest *attest.Index
}

// OpenOptions configure Open.
type OpenOptions struct {
	// Init initialises the directory first if it is not initialised.
	Init bool
	// Name is passed to Init.
	Name string
	// Logger receives diagnostics (witness failures); nil discards them.
	Logger *slog.Logger
	// OnBatch is the log's batch hook (metrics); see log.Options.OnBatch.
	OnBatch func(entries int, commit time.Duration, err error)
}

// Open opens the node in dir: its database, block store and log. It fails
// with ErrNotInitialised (unless o.Init) and with a *kv.LockedError when
// another process holds it.
func Open(dir string, o OpenOptions) (*Node, error) {
	cfg, err := LoadConfig(dir)
	if errors.Is(err, ErrNotInitialised) && o.Init {
		if _, err = Init(dir, InitOptions{Name: o.Name}); err != nil {
			return nil, err
		}
		cfg, err = LoadConfig(dir)
	}
	if err != nil {
		return nil, err
	}
	lo, err := logOptions(dir, cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	lo.OnBatch = o.OnBatch
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir, Config: cfg, DB: db}
	n.Store = store.New(db, store.Options{SyncWrites: cfg.SyncWrites})
	if n.Log, err = tlog.Open(db, lo); err != nil {
		db.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	n.Attest = attest.NewIndex(db)
	// Every published attestation's envelope block is a GC root.
	n.Store.RegisterRoots("attestations", func(ctx context.Context) ([]cid.Cid, error) {
		recs, err := n.Attest.Search(attest.Query{})
		if err != nil {
			return nil, err
		}
		ids := make([]cid.Cid, 0, len(recs))
		for _, r := range recs {
			c, err := cid.Decode(r.ID)
			if err != nil {
				return nil, fmt.Errorf("attestation index: %w", err)
			}
			ids = append(ids, c)
		}
		return ids, nil
	})
	return n, nil
}

// logOptions builds the log's options from the config and keys.
func logOptions(dir string, cfg *Config, logger *slog.Logger) (tlog.Options, error) {
	var lo tlog.Options
	skey, err := ReadKey(dir, LogKeyFile)
	if err != nil {
		return lo, err
	}
	if lo.Signer, err = note.NewSigner(skey); err != nil {
		return lo, fmt.Errorf("%s: %w", LogKeyFile, err)
	}
	lo.Origin = cfg.Origin
	wkey, err := ReadKey(dir, WitnessKeyFile)
	if err != nil {
		return lo, err
	}
	if lo.WitnessSigner, err = fnote.NewSignerForCosignatureV1(wkey); err != nil {
		return lo, fmt.Errorf("%s: %w", WitnessKeyFile, err)
	}
	for _, w := range cfg.Witnesses {
		v, err := fnote.NewVerifierForCosignatureV1(w.Key)
		if err != nil {
			return lo, fmt.Errorf("config: witness %s: key %q: %w", w.URL, w.Key, err)
		}
		lo.Witnesses = append(lo.Witnesses, tlog.WitnessConfig{URL: w.URL, Verifier: v})
	}
	lo.Peers = map[string]note.Verifier{}
	for _, p := range cfg.Peers {
		v, err := note.NewVerifier(p.Key)
		if err != nil {
			return lo, fmt.Errorf("config: peer %s: key %q: %w", p.Origin, p.Key, err)
		}
		lo.Peers[p.Origin] = v
	}
	if logger != nil {
		lo.Logf = func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) }
	}
	return lo, nil
}

// Publisher publishes attestations on this node: envelope block, log entry,
// index record.
func (n *Node) Publisher() *attest.Publisher {
	return &attest.Publisher{Blocks: n.Store.Blockstore(), Log: n.Log, Index: n.Attest}
}

// Close stops the log (acknowledging nothing it has not made durable) and
// closes the database.
func (n *Node) Close() error {
	var errs []error
	if n.Log != nil {
		errs = append(errs, n.Log.Close())
	}
	if n.Store != nil {
		errs = append(errs, n.Store.Close()) // syncs and closes pack files
	}
	if !n.DB.Opts().ReadOnly {
		if err := n.DB.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync database: %w", err))
		}
	}
	// kv.Close leaves the database to be replayed rather than flush it
	// onto a full disk.
	errs = append(errs, kv.Close(n.DB))
	return errors.Join(errs...)
}
