package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentix/agentix-store/kv"
	"github.com/dgraph-io/badger/v4"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Pin is one pin record. A recursive pin (Direct false) keeps the whole DAG
// under Cid; a direct pin keeps only the block Cid itself.
type Pin struct {
	Cid     cid.Cid
	Name    string
	Direct  bool
	Created time.Time
}

// PinOptions configure Pin.
type PinOptions struct {
	// Name is a free-form label shown by Pins.
	Name string
	// Direct pins only the block itself, not the DAG under it.
	Direct bool
}

// pinRecord is the stored form of a Pin (JSON, under kv.PrefixPins + the
// CID's binary form).
type pinRecord struct {
	Name    string    `json:"name,omitempty"`
	Direct  bool      `json:"direct,omitempty"`
	Created time.Time `json:"created"`
}

func pinKey(c cid.Cid) []byte {
	b := c.Bytes()
	k := make([]byte, 0, len(kv.PrefixPins)+len(b))
	k = append(k, kv.PrefixPins...)
	return append(k, b...)
}

// Pin pins c; it takes GCLock (see PinHeld). A recursive pin first walks the whole DAG under c and fails,
// writing nothing, with a *MissingBlockError naming the first block that is
// not stored (or the walker's error for an undecodable block); a direct pin
// only requires the block c itself. Pinning an already pinned CID replaces
// its name and kind and keeps its creation time. Pin holds GCLock, so a
// concurrent GC either runs before (and may collect an unpinned DAG, making
// Pin fail) or after (and keeps the DAG).
func (s *Store) Pin(ctx context.Context, c cid.Cid, o PinOptions) error {
	unlock := s.GCLock()
	defer unlock()
	return s.pinLocked(ctx, c, o)
}

// pinLocked is Pin for a caller that already holds GCLock.
func (s *Store) pinLocked(ctx context.Context, c cid.Cid, o PinOptions) error {
	if !c.Defined() {
		return fmt.Errorf("pin: %w: undefined CID", ErrInvalidCID)
	}
	if o.Direct {
		ok, err := s.bs.Has(ctx, c)
		if err != nil {
			return fmt.Errorf("pin %s: %w", c, err)
		}
		if !ok {
			return fmt.Errorf("pin %s: %w", c, &MissingBlockError{Cid: c})
		}
	} else {
		err := s.walk(ctx, c, map[string]struct{}{}, leafHas, func(cid.Cid, blocks.Block) error { return nil })
		if err != nil {
			return fmt.Errorf("pin %s: DAG incomplete: %w", c, err)
		}
	}
	release, err := kv.Claim(s.db, 4<<10)
	if err != nil {
		return fmt.Errorf("pin %s: %w", c, err)
	}
	defer release()
	return s.db.Update(func(txn *badger.Txn) error {
		rec := pinRecord{Name: o.Name, Direct: o.Direct, Created: time.Now().UTC()}
		if old, err := getPin(txn, c); err == nil {
			rec.Created = old.Created
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return txn.Set(pinKey(c), v)
	})
}

func getPin(txn *badger.Txn, c cid.Cid) (pinRecord, error) {
	var rec pinRecord
	it, err := txn.Get(pinKey(c))
	if err != nil {
		return rec, err
	}
	err = it.Value(func(v []byte) error { return json.Unmarshal(v, &rec) })
	if err != nil {
		return rec, fmt.Errorf("pin record %s: %w", c, err)
	}
	return rec, nil
}

// Unpin removes the pin on c. It returns an error matching ErrNotPinned when
// c has no pin. The blocks stay until the next GC.
func (s *Store) Unpin(ctx context.Context, c cid.Cid) error {
	return s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(pinKey(c)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("unpin %s: %w", c, ErrNotPinned)
		} else if err != nil {
			return fmt.Errorf("unpin %s: %w", c, err)
		}
		return txn.Delete(pinKey(c))
	})
}

// IsPinned reports whether c itself has a pin (direct or recursive). It does
// not report blocks kept only because a recursive pin's DAG contains them.
func (s *Store) IsPinned(ctx context.Context, c cid.Cid) (bool, error) {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(pinKey(c))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pin lookup %s: %w", c, err)
	}
	return true, nil
}

// Pins lists every pin, ordered by the CID's binary form.
func (s *Store) Pins(ctx context.Context) ([]Pin, error) {
	var out []Pin
	err := s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = kv.PrefixPins
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			c, err := cid.Cast(item.Key()[len(kv.PrefixPins):])
			if err != nil {
				return fmt.Errorf("pin key %x: %w", item.Key(), err)
			}
			var rec pinRecord
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return fmt.Errorf("pin record %s: %w", c, err)
			}
			out = append(out, Pin{Cid: c, Name: rec.Name, Direct: rec.Direct, Created: rec.Created})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}

// PinHeld is Pin for a caller that already holds GCLock, such as a writer
// that stores a DAG and pins its root before releasing the lock (so no GC can
// run between the two). Calling Pin while holding GCLock can deadlock with a
// GC waiting for the lock; PinHeld cannot.
func (s *Store) PinHeld(ctx context.Context, c cid.Cid, o PinOptions) error {
	return s.pinLocked(ctx, c, o)
}
