package store

import (
	"context"
	"fmt"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
)

// Stats summarise the store.
type Stats struct {
	// Blocks is the number of stored blocks.
	Blocks int `json:"blocks"`
	// Bytes is the sum of the stored blocks' sizes (not the disk usage,
	// which includes the database's own overhead and not yet reclaimed
	// space).
	Bytes int64 `json:"bytes"`
	// Pins is the number of pins, direct and recursive.
	Pins int `json:"pins"`
}

// Stat counts blocks, their bytes and pins from one consistent snapshot. It
// reads keys only, never block bytes.
func (s *Store) Stat(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = kv.PrefixBlocks
		it := txn.NewIterator(opt)
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				it.Close()
				return err
			}
			n, err := blockSize(it.Item())
			if err != nil {
				it.Close()
				return err
			}
			st.Blocks++
			st.Bytes += n
		}
		it.Close()

		opt.Prefix = kv.PrefixPins
		it = txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			st.Pins++
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stat: %w", err)
	}
	return st, nil
}
