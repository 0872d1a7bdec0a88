package store

import (
	"context"
	"fmt"
	"io"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Hold is a set of temporary GC roots for one write that makes its data
// reachable only at its end (an attestation is a root once indexed, an
// audit snapshot once the workspace head names it, a closure once pinned).
//
// Every block written through a Hold is recorded in it in the same GCLock
// step that writes it, so no GC can run between "blocks stored" and "held":
// a GC either runs before the write (and the write then stores the blocks
// again) or sees the hold and keeps, recursively, whatever part of each held
// DAG is present. The writer records its durable root (pin, index entry,
// head) and only then calls Release, and acknowledges only after that: from
// the first block to the acknowledgement some root reaches the data.
//
// A Hold is in memory only: after a crash its roots are gone, which is right,
// since nothing it held was acknowledged. A Hold never holds GCLock between
// calls, so it can be kept across calls that take GCLock themselves (Add,
// Pin, a publish) and across slow steps (a log append) without making GC, or
// writers queued behind a waiting GC, wait. It is safe for concurrent use.
type Hold struct {
	s        *Store
	mu       sync.Mutex
	cids     []cid.Cid
	released bool
}

// heldRef counts the Holds holding one CID.
type heldRef struct {
	c cid.Cid
	n int
}

// NewHold returns an empty Hold on s. Call Release when the write's root is
// durable (or the write failed).
func (s *Store) NewHold() *Hold { return &Hold{s: s} }

// Add is Store.Add whose root, when Add succeeds, is held before GCLock is
// released.
func (h *Hold) Add(ctx context.Context, r io.Reader, o AddOptions) (cid.Cid, error) {
	return h.s.add(ctx, r, o, h)
}

// Put stores blks (Blockstore.PutMany) and holds each of them, under GCLock.
func (h *Hold) Put(ctx context.Context, blks ...blocks.Block) error {
	unlock := h.s.GCLock()
	defer unlock()
	if err := h.s.bs.PutMany(ctx, blks); err != nil {
		return err
	}
	for _, b := range blks {
		h.keepLocked(b.Cid())
	}
	return nil
}

// Keep holds c, already stored, if it is still stored, and reports whether
// it is: under GCLock, so a true answer means no GC can take c (or the
// present part of its DAG) until Release.
func (h *Hold) Keep(ctx context.Context, c cid.Cid) (bool, error) {
	unlock := h.s.GCLock()
	defer unlock()
	ok, err := h.s.bs.Has(ctx, c)
	if err != nil {
		return false, fmt.Errorf("hold %s: %w", c, err)
	}
	if ok {
		h.keepLocked(c)
	}
	return ok, nil
}

// keepLocked records c in h and in the store's held set; the caller holds
// GCLock (for reading).
func (h *Hold) keepLocked(c cid.Cid) {
	if !c.Defined() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		// A Hold used after Release holds nothing new: the write it
		// served is over.
		return
	}
	h.cids = append(h.cids, c)
	s := h.s
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held == nil {
		s.held = map[string]*heldRef{}
	}
	r := s.held[c.KeyString()]
	if r == nil {
		r = &heldRef{c: c}
		s.held[c.KeyString()] = r
	}
	r.n++
}

// Release drops everything h holds. Call it only once the write's root is
// durable; the next GC may then collect whatever no other root reaches.
// Release is idempotent.
func (h *Hold) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	s := h.s
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	for _, c := range h.cids {
		if r := s.held[c.KeyString()]; r != nil {
			if r.n--; r.n <= 0 {
				delete(s.held, c.KeyString())
			}
		}
	}
	h.cids = nil
}

// heldRoots returns every CID some Hold holds.
func (s *Store) heldRoots() []cid.Cid {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	out := make([]cid.Cid, 0, len(s.held))
	for _, r := range s.held {
		out = append(out, r.c)
	}
	return out
}

// PutHeld stores b and holds it (see Hold) until release is called: for a
// writer, such as an attestation publisher, whose root for b is recorded
// after the Put. A Blockstore not opened through New has no GC and
// therefore nothing to hold; release is then a no-op.
func (b *Blockstore) PutHeld(ctx context.Context, blk blocks.Block) (release func(), err error) {
	if b.owner == nil {
		return func() {}, b.Put(ctx, blk)
	}
	h := b.owner.NewHold()
	if err := h.Put(ctx, blk); err != nil {
		h.Release()
		return func() {}, err
	}
	return h.Release, nil
}
