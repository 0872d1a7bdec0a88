package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentix/agentix-store/kv"
)

// Key layout under kv.PrefixAudit ("x/"), per workspace name W (its bytes
// escaped so that "/" cannot collide with the separators):
//
//	x/w/<W>/head            headState (JSON): the accepted snapshot
//	x/w/<W>/s/<seq:020d>    historyEntry (JSON): every accepted snapshot
//	x/w/<W>/e/<seq:020d>    Evidence (JSON): every refused version
//	x/w/<W>/p/<rel>         ProposalRec (JSON), latest per patch path
//	x/w/<W>/d/<request>     line (decimal) of the first denial of request
//	x/w/<W>/a/<line:020d>   ApplyRec (JSON)
//	x/w/<W>/n/applies       number of ApplyRecs (JSON)
//	x/w/<W>/v/<line:020d>/<i:04d> Violation (JSON)
//	x/w/<W>/f/<line:020d>/<i:04d> Finding (JSON)
//	x/w/<W>/i/<line:020d>   id of the apply/v1 attestation of that apply line
//	x/i/<attestation id>    applyRef (JSON): workspace and line of an apply/v1
//
// Every per-line key is a function of the line, so re-evaluating a line
// (after a crash between writing evaluator state and the head) rewrites the
// same keys: the head, written last, is the commit point.
func wsKey(ws string, parts ...string) []byte {
	k := append(slices.Clone(kv.PrefixAudit), "w/"...)
	k = append(k, escape(ws)...)
	for _, p := range parts {
		k = append(append(k, '/'), p...)
	}
	return k
}

func escape(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == '%' {
			b = append(b, fmt.Sprintf("%%%02x", c)...)
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func seqKey(n int64) string { return fmt.Sprintf("%020d", n) }

// dbState is the evaluator State of one workspace in the database. Writes
// are buffered in memory and written by flush; reads see the buffer first.
type dbState struct {
	db  *badger.DB
	ws  string
	buf map[string][]byte
	// counts of violations/findings per line, for their key suffix
	nv, nf map[int64]int
	// decoded copies of what is buffered (or was read), so that the
	// evaluator's lookups during one ingest decode no JSON
	props    map[string]ProposalRec
	denied   map[string]int64
	nApplies int // -1: not known yet
}

func newDBState(db *badger.DB, ws string) *dbState {
	return &dbState{db: db, ws: ws, buf: map[string][]byte{}, nv: map[int64]int{}, nf: map[int64]int{},
		props: map[string]ProposalRec{}, denied: map[string]int64{}, nApplies: -1}
}

func (s *dbState) get(k []byte, v any) (bool, error) {
	if b, ok := s.buf[string(k)]; ok {
		return true, json.Unmarshal(b, v)
	}
	return getJSON(s.db, k, v)
}

func (s *dbState) put(k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.buf[string(k)] = b
	return nil
}

// listJSON decodes every JSON value stored under prefix, in key order.
func listJSON[T any](s *dbState, prefix []byte) ([]T, error) {
	var out []T
	err := s.list(prefix, func(b []byte) error {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func (s *dbState) list(prefix []byte, each func([]byte) error) error {
	seen := map[string]bool{}
	keys := []string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if _, ok := s.buf[k]; ok {
				continue
			}
			seen[k] = true
			if err := it.Item().Value(each); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := range s.buf {
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := each(s.buf[k]); err != nil {
			return err
		}
	}
	return nil
}

func (s *dbState) Proposal(rel string) (ProposalRec, bool, error) {
	if p, ok := s.props[rel]; ok {
		return p, true, nil
	}
	var p ProposalRec
	ok, err := s.get(wsKey(s.ws, "p", rel), &p)
	if ok && err == nil {
		s.props[rel] = p
	}
	return p, ok, err
}
func (s *dbState) PutProposal(p ProposalRec) error {
	s.props[p.Rel] = p
	return s.put(wsKey(s.ws, "p", p.Rel), p)
}
func (s *dbState) DeniedRequest(r string) (int64, bool, error) {
	if l, ok := s.denied[r]; ok {
		return l, true, nil
	}
	var l int64
	ok, err := s.get(wsKey(s.ws, "d", r), &l)
	if ok && err == nil {
		s.denied[r] = l
	}
	return l, ok, err
}
func (s *dbState) PutDeniedRequest(r string, l int64) error {
	if _, ok, err := s.DeniedRequest(r); ok || err != nil {
		return err
	}
	s.denied[r] = l
	return s.put(wsKey(s.ws, "d", r), l)
}
func (s *dbState) PutApply(a ApplyRec) error {
	k := wsKey(s.ws, "a", seqKey(a.Line))
	var old ApplyRec
	if ok, err := s.get(k, &old); err != nil {
		return err
	} else if !ok {
		n, err := s.ApplyCount()
		if err != nil {
			return err
		}
		if err := s.put(wsKey(s.ws, "n", "applies"), n+1); err != nil {
			return err
		}
		s.nApplies = n + 1
	}
	return s.put(k, a)
}

// ApplyCount is the number of applies recorded.
func (s *dbState) ApplyCount() (int, error) {
	if s.nApplies >= 0 {
		return s.nApplies, nil
	}
	var n int
	_, err := s.get(wsKey(s.ws, "n", "applies"), &n)
	if err == nil {
		s.nApplies = n
	}
	return n, err
}
func (s *dbState) Applies() ([]ApplyRec, error) {
	out, err := listJSON[ApplyRec](s, wsKey(s.ws, "a", ""))
	slices.SortFunc(out, func(a, b ApplyRec) int { return int(a.Line - b.Line) })
	return out, err
}
func (s *dbState) AddViolation(v Violation) error {
	i := s.nv[v.Line]
	s.nv[v.Line]++
	return s.put(wsKey(s.ws, "v", seqKey(v.Line), fmt.Sprintf("%04d", i)), v)
}
func (s *dbState) Violations() ([]Violation, error) {
	out, err := listJSON[Violation](s, wsKey(s.ws, "v", ""))
	for i := range out {
		out[i].restoreReason()
	}
	return out, err
}
func (s *dbState) AddFinding(f Finding) error {
	i := s.nf[f.Line]
	s.nf[f.Line]++
	return s.put(wsKey(s.ws, "f", seqKey(f.Line), fmt.Sprintf("%04d", i)), f)
}
func (s *dbState) Findings() ([]Finding, error) {
	return listJSON[Finding](s, wsKey(s.ws, "f", ""))
}

// flush writes the buffered state.
func (s *dbState) flush() error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for k, v := range s.buf {
		if err := wb.Set([]byte(k), v); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.buf = map[string][]byte{}
	return nil
}

// applyRef locates the apply an apply/v1 attestation published by this
// node names.
type applyRef struct {
	Workspace   string `json:"workspace"`
	Line        int64  `json:"line"` // 1-based
	PatchSHA256 string `json:"patchSha256"`
}

func applyIDKey(id string) []byte {
	return append(append(slices.Clone(kv.PrefixAudit), "i/"...), id...)
}

// getJSON reads and decodes key k; ok is false when it is absent.
func getJSON(db *badger.DB, k []byte, v any) (bool, error) {
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}
