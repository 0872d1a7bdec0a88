package closure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// The package's badger key space, under kv.PrefixClosure ("c/"):
//
//	c/h/<hash part>           → CID of the StorePathInfo of that store path
//	c/n/<narHash, nixbase32>  → CID of the NAR (UnixFS file)
//	c/r/<closure CID bytes>   → JSON closureEntry (root, counts, time)
//
// Entries are written only after a closure was imported completely, checked
// and pinned, so everything the index names is reachable from a pin.
var (
	keyHash    = append(append([]byte{}, kv.PrefixClosure...), "h/"...)
	keyNAR     = append(append([]byte{}, kv.PrefixClosure...), "n/"...)
	keyClosure = append(append([]byte{}, kv.PrefixClosure...), "r/"...)
)

func key(prefix []byte, suffix []byte) []byte {
	k := make([]byte, 0, len(prefix)+len(suffix))
	return append(append(k, prefix...), suffix...)
}

// ClosureSummary is one imported closure as listed by List.
type ClosureSummary struct {
	CID      cid.Cid   `json:"cid"`
	Root     string    `json:"root"`
	Paths    int       `json:"paths"`
	NarBytes int64     `json:"narBytes"`
	Imported time.Time `json:"imported"`
}

type closureEntry struct {
	Root     string    `json:"root"`
	Paths    int       `json:"paths"`
	NarBytes int64     `json:"narBytes"`
	Imported time.Time `json:"imported"`
}

// index writes the index entries of an imported closure in one transaction.
func index(db *badger.DB, c cid.Cid, cl *Closure, infos map[string]*StorePathInfo, spiCids map[string]cid.Cid, narBytes int64) error {
	ent, err := json.Marshal(closureEntry{Root: cl.Root, Paths: len(cl.Paths), NarBytes: narBytes, Imported: time.Now().UTC()})
	if err != nil {
		return err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for p, spi := range infos {
		if err := wb.Set(key(keyHash, []byte(hashPart(p))), spiCids[p].Bytes()); err != nil {
			return err
		}
		h, err := ParseNarHash(spi.NarHash)
		if err != nil {
			return err
		}
		if err := wb.Set(key(keyNAR, []byte(nixbase32.EncodeToString(h.Digest()))), spi.NARCid().Bytes()); err != nil {
			return err
		}
	}
	if err := wb.Set(key(keyClosure, c.Bytes()), ent); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write closure index: %w", err)
	}
	return nil
}

func getCid(db *badger.DB, k []byte) (cid.Cid, error) {
	var c cid.Cid
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			var err error
			c, err = cid.Cast(append([]byte(nil), v...))
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return cid.Undef, ErrNotFound
	}
	return c, err
}

// LookupHashPart returns the CID of the StorePathInfo of the imported store
// path whose hash part is h, or ErrNotFound.
func LookupHashPart(db *badger.DB, h string) (cid.Cid, error) {
	return getCid(db, key(keyHash, []byte(h)))
}

// LookupNAR returns the CID of the NAR whose SHA-256 is the nixbase32 string
// h, or ErrNotFound.
func LookupNAR(db *badger.DB, h string) (cid.Cid, error) {
	return getCid(db, key(keyNAR, []byte(h)))
}

// List returns every imported closure, oldest first.
func List(db *badger.DB) ([]ClosureSummary, error) {
	var out []ClosureSummary
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyClosure, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			c, err := cid.Cast(item.KeyCopy(nil)[len(keyClosure):])
			if err != nil {
				return fmt.Errorf("closure index: bad key: %w", err)
			}
			var e closureEntry
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("closure index %s: %w", c, err)
			}
			out = append(out, ClosureSummary{CID: c, Root: e.Root, Paths: e.Paths, NarBytes: e.NarBytes, Imported: e.Imported})
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Imported.Before(out[j].Imported) })
	return out, err
}

// inflight holds the CIDs written by imports still running on a store, so
// that a GC in the middle of an import keeps them (they are pinned only at
// the end). It is registered once per store as a GC root source.
//
// A NAR's CID is known only when store.Add returns, after Add has released
// the store's GC lock; a GC could run in that instant, before the CID is
// registered here. So every Add is announced first (begin) and settled
// right after it returns (finish), and the root source — which GC calls
// with the GC lock held exclusively — waits for every announced Add that has
// started reading its input. Such an Add held the GC lock when it read
// (store.Add reads only under the lock), so with GC holding the lock now it
// has returned, and its finish needs no lock GC holds: the wait is short and
// cannot deadlock. Adds that have not started have written nothing.
type inflight struct {
	mu      sync.Mutex
	settled *sync.Cond // signalled by finish
	cids    map[string]*inflightRef
	pending map[*pendingAdd]struct{}
}

type inflightRef struct {
	c cid.Cid
	n int
}

// pendingAdd is one store.Add announced with begin.
type pendingAdd struct{ started atomic.Bool }

// reader wraps the Add's input so that its first Read marks it started.
func (p *pendingAdd) reader(r io.Reader) io.Reader { return &startedReader{r: r, p: p} }

type startedReader struct {
	r io.Reader
	p *pendingAdd
}

func (s *startedReader) Read(b []byte) (int, error) {
	if !s.p.started.Load() {
		s.p.started.Store(true)
	}
	return s.r.Read(b)
}

// inflightFor maps a store to its in-flight set without keeping the store
// alive: the entry goes when the store is collected.
var (
	inflightMu  sync.Mutex
	inflightFor = map[weak.Pointer[store.Store]]*inflight{}
)

func inflightOf(st *store.Store) *inflight {
	inflightMu.Lock()
	defer inflightMu.Unlock()
	k := weak.Make(st)
	f := inflightFor[k]
	if f == nil {
		f = &inflight{cids: map[string]*inflightRef{}, pending: map[*pendingAdd]struct{}{}}
		f.settled = sync.NewCond(&f.mu)
		inflightFor[k] = f
		st.RegisterRoots("closure/in-flight", f.roots)
		runtime.AddCleanup(st, func(k weak.Pointer[store.Store]) {
			inflightMu.Lock()
			delete(inflightFor, k)
			inflightMu.Unlock()
		}, k)
	}
	return f
}

// roots is the GC root source: every held CID, once no started Add is left
// unsettled.
func (f *inflight) roots(ctx context.Context) ([]cid.Cid, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.unsettled() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f.settled.Wait()
	}
	out := make([]cid.Cid, 0, len(f.cids))
	for _, r := range f.cids {
		out = append(out, r.c)
	}
	return out, nil
}

func (f *inflight) unsettled() bool {
	for p := range f.pending {
		if p.started.Load() {
			return true
		}
	}
	return false
}

// begin announces an Add about to run; call finish when it returns.
func (f *inflight) begin() *pendingAdd {
	p := &pendingAdd{}
	f.mu.Lock()
	f.pending[p] = struct{}{}
	f.mu.Unlock()
	return p
}

// finish settles p: c (if defined) is held from now on, in the same step.
func (f *inflight) finish(p *pendingAdd, c cid.Cid) {
	f.mu.Lock()
	if c.Defined() {
		f.addLocked(c)
	}
	delete(f.pending, p)
	f.mu.Unlock()
	f.settled.Broadcast()
}

func (f *inflight) add(c cid.Cid) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addLocked(c)
}

func (f *inflight) addLocked(c cid.Cid) {
	r := f.cids[c.KeyString()]
	if r == nil {
		r = &inflightRef{c: c}
		f.cids[c.KeyString()] = r
	}
	r.n++
}

func (f *inflight) remove(cs []cid.Cid) {
	f.mu.Lock()
	for _, c := range cs {
		if r := f.cids[c.KeyString()]; r != nil {
			if r.n--; r.n <= 0 {
				delete(f.cids, c.KeyString())
			}
		}
	}
	f.mu.Unlock()
}

// MarshalJSON renders CIDs as strings.
func (s ClosureSummary) MarshalJSON() ([]byte, error) {
	type plain ClosureSummary
	return json.Marshal(struct {
		plain
		CID string `json:"cid"`
	}{plain(s), s.CID.String()})
}
