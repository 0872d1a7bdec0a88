package node

import (
	"errors"
	"fmt"

	"github.com/agentix/agentix-store/internal/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
)

// Node is an opened data directory.
type Node struct {
	Dir    string
	Config *Config
	DB     *badger.DB
	Store  *store.Store
}

// OpenOptions configure Open.
type OpenOptions struct {
	// Init initialises the directory first if it is not initialised.
	Init bool
	// Name is passed to Init.
	Name string
}

// Open opens the node in dir. It fails with ErrNotInitialised (unless
// o.Init) and with a *kv.LockedError when another process holds it.
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
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir, Config: cfg, DB: db}
	n.Store = store.New(db, store.Options{SyncWrites: cfg.SyncWrites})
	return n, nil
}

// Close closes the database. Everything acknowledged before is durable.
func (n *Node) Close() error {
	if err := n.DB.Sync(); err != nil {
		n.DB.Close()
		return fmt.Errorf("sync database: %w", err)
	}
	return n.DB.Close()
}
