package tlog

import (
	"bytes"
	"fmt"
	"maps"
	"time"

	"github.com/agentix/agentix-store/kv"
	"github.com/transparency-dev/merkle/compact"
)

// batchBudget bounds the estimated size of one badger transaction
// (badger refuses transactions over 15% of its memtable size).
const batchBudget = 1 << 20

func estimate(e []byte) int {
	if len(e) >= 1<<10 { // goes to the value log; only a pointer is in the txn
		return 128
	}
	return len(e) + 128
}

// sequence is the sequencer goroutine: it gathers queued appends into a
// batch, commits the batch durably, acknowledges it and repeats.
//
// Batching is self-clocking: whatever queued while the previous batch was
// being fsynced forms the next one. When the previous batch had company
// (more than one entry), the sequencer also lingers up to MaxWait for more,
// stopping as soon as MaxBatch entries are in hand. A lone writer is never
// made to linger.
func (l *Log) sequence() {
	defer close(l.done)
	for {
		var first *appendReq
		select {
		case first = <-l.reqs:
		case <-l.quit:
			l.failQueued()
			return
		}
		batch := []*appendReq{first}
		budget := batchBudget - estimate(first.entry)
	drain:
		for len(batch) < l.opts.MaxBatch && budget > 0 {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
				budget -= estimate(r.entry)
			default:
				break drain
			}
		}
		if l.opts.MaxWait > 0 && l.lastBatch > 1 && len(batch) < l.opts.MaxBatch && budget > 0 {
			t := time.NewTimer(l.opts.MaxWait)
		linger:
			for len(batch) < l.opts.MaxBatch && budget > 0 {
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
					budget -= estimate(r.entry)
				case <-t.C:
					break linger
				case <-l.quit:
					break linger
				}
			}
			t.Stop()
		}
		l.lastBatch = len(batch)
		began := time.Now()
		start, err := l.commit(batch)
		if l.opts.OnBatch != nil {
			l.opts.OnBatch(len(batch), time.Since(began), err)
		}
		for i, r := range batch {
			if err != nil {
				r.done <- appendRes{err: err}
			} else {
				r.done <- appendRes{index: start + uint64(i)}
			}
		}
		if err == nil && l.wit != nil {
			l.wit.notify()
		}
		if err == nil {
			l.kickIndexer(start + uint64(len(batch)))
		}
	}
}

// ErrNoSpace is returned (wrapped, in a *kv.NoSpaceError naming the data
// directory) by Append when the database's filesystem is below its
// free-space reserve; nothing of the batch was written. It is kv.ErrNoSpace.
var ErrNoSpace = kv.ErrNoSpace

// commitSize bounds what committing batch writes: its entries, the tiles
// it changes (at most two per level, 8 KiB each), the tree state and the
// checkpoint.
func commitSize(batch []*appendReq) int64 {
	n := int64(64 << 10)
	for _, r := range batch {
		n += int64(len(r.entry)) + 2 + 128
	}
	return n
}

func (l *Log) failQueued() {
	for {
		select {
		case r := <-l.reqs:
			r.done <- appendRes{err: ErrClosed}
		default:
			return
		}
	}
}

type fullTile struct {
	level, index uint64
	hashes       []byte
}

// commit writes batch in one transaction with the tiles it completes or
// extends, the new tree state and a checkpoint signed over it, then fsyncs.
// Only after that does it publish the new state in memory. It returns the
// index of the batch's first entry.
func (l *Log) commit(batch []*appendReq) (uint64, error) {
	if e := l.broken.Load(); e != nil {
		return 0, fmt.Errorf("%w: %v", ErrBroken, *e)
	}
	// Nothing is written below the free-space reserve: badger cannot
	// report a full disk, it dies of it. A refused batch leaves the log
	// as it was (not broken): the next batch is admitted once there is
	// space again.
	release, err := kv.Claim(l.db, commitSize(batch))
	if err != nil {
		return 0, fmt.Errorf("commit batch of %d entries: %w", len(batch), err)
	}
	defer release()
	start := l.rng.End()
	hs := l.rng.Hashes()
	cl := make([][]byte, len(hs))
	copy(cl, hs)
	rng, err := rf.NewRange(0, start, cl)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	edge := maps.Clone(l.edge)
	touched := map[uint64]bool{}
	var full []fullTile
	var vErr error
	visit := func(id compact.NodeID, h []byte) {
		if id.Level%tileHeight != 0 {
			return
		}
		level := uint64(id.Level / tileHeight)
		t := edge[level]
		if !touched[level] {
			t = bytes.Clone(t)
			touched[level] = true
		}
		if want := id.Index % tileWidth; uint64(len(t)/hashSize) != want && vErr == nil {
			vErr = fmt.Errorf("%w: node %d/%d lands at %d in its tile", ErrCorrupt, id.Level, id.Index, len(t)/hashSize)
		}
		t = append(t, h...)
		if len(t) == tileWidth*hashSize {
			full = append(full, fullTile{level, id.Index / tileWidth, t})
			t = nil
		}
		edge[level] = t
	}

	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	if err := writeRuns(txn, start, batch); err != nil {
		return 0, err
	}
	// The batch's leaf hashes go into the level-0 tiles; the leaf-hash
	// index is built from those later, off this path (leafindex.go).
	for _, r := range batch {
		if err := rng.Append(r.leaf, visit); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	if vErr != nil {
		return 0, vErr
	}
	size := rng.End()
	for _, ft := range full {
		if err := txn.Set(tileKey(ft.level, ft.index), ft.hashes); err != nil {
			return 0, fmt.Errorf("write tile: %w", err)
		}
	}
	for level := range touched {
		if t := edge[level]; len(t) > 0 {
			index := (size >> (level * tileHeight)) / tileWidth
			if err := txn.Set(tileKey(level, index), t); err != nil {
				return 0, fmt.Errorf("write tile: %w", err)
			}
		}
	}
	root, err := l.root(rng)
	if err != nil {
		return 0, err
	}
	cp, err := l.sign(size, root)
	if err != nil {
		return 0, err
	}
	if err := txn.Set(keyState, encodeState(size, rng.Hashes())); err != nil {
		return 0, fmt.Errorf("write tree state: %w", err)
	}
	if err := txn.Set(keyCP, cp.Note); err != nil {
		return 0, fmt.Errorf("write checkpoint: %w", err)
	}
	l.cpUpdateMu.Lock()
	defer l.cpUpdateMu.Unlock()
	if err := txn.Commit(); err != nil {
		return 0, fmt.Errorf("commit batch of %d entries: %w", len(batch), err)
	}
	if err := l.db.Sync(); err != nil {
		// The batch is visible in memory but may not be durable: refuse
		// everything from now on rather than acknowledge on top of it.
		l.broken.Store(&err)
		return 0, fmt.Errorf("%w: fsync: %v", ErrBroken, err)
	}
	l.rng, l.edge = rng, edge
	l.cur.Store(&cp)
	return start, nil
}
