package attest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/kv"
)

// Index keys, all under kv.PrefixAttest ("a/"). <id> is the attestation
// CID's binary form, <log> a big-endian uint64; NUL separates a variable
// field from the id.
//
//	a/r/<id>                  -> Record (JSON)
//	a/l/<log>                 -> <id>
//	a/s/<subject cid>\0<id>   -> ""   (subject ipfs:// URI, CID string form)
//	a/h/<sha256 hex>\0<id>    -> ""   (subject sha256 digest)
//	a/n/<subject name>\0<id>  -> ""   (subject name, e.g. a store path)
//	a/t/<predicate type>\0<id> -> ""
//	a/k/<key id>\0<id>        -> ""   (key ids named by the signatures)
var (
	ixRecord    = sub("r/")
	ixLog       = sub("l/")
	ixSubject   = sub("s/")
	ixSHA256    = sub("h/")
	ixName      = sub("n/")
	ixPredicate = sub("t/")
	ixSigner    = sub("k/")
)

func sub(s string) []byte { return append(slices.Clone(kv.PrefixAttest), s...) }

func key(prefix []byte, parts ...[]byte) []byte {
	k := slices.Clone(prefix)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// Record is what the index keeps about one published attestation.
type Record struct {
	ID            string               `json:"id"` // CID of the envelope block
	LogIndex      uint64               `json:"logIndex"`
	PredicateType string               `json:"predicateType"`
	Subjects      []ResourceDescriptor `json:"subjects"`
	// Signers are the key ids the envelope's signatures name. They are
	// claims: the index does not know which keys to trust (VerifyEnvelope
	// with a trust policy does).
	Signers []string `json:"signers"`
	Size    int      `json:"size"` // envelope bytes
}

// Index finds published attestations by subject, predicate type and signer.
// It lives in the node's badger database under kv.PrefixAttest.
type Index struct{ db *badger.DB }

// NewIndex returns the index kept in db (opened with kv.Open).
func NewIndex(db *badger.DB) *Index { return &Index{db: db} }

// Add records r. Adding the same id again overwrites its record.
func (ix *Index) Add(r Record) error {
	id, err := cid.Decode(r.ID)
	if err != nil {
		return fmt.Errorf("index attestation: id %q: %w", r.ID, err)
	}
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	idb := id.Bytes()
	return ix.db.Update(func(txn *badger.Txn) error {
		set := func(k, v []byte) error { return txn.Set(k, v) }
		if err := set(key(ixRecord, idb), val); err != nil {
			return err
		}
		if err := set(key(ixLog, binary.BigEndian.AppendUint64(nil, r.LogIndex)), idb); err != nil {
			return err
		}
		if err := set(key(ixPredicate, []byte(r.PredicateType), idb), nil); err != nil {
			return err
		}
		for _, s := range r.Subjects {
			if c, ok := s.CID(); ok {
				if err := set(key(ixSubject, []byte(c.String()), idb), nil); err != nil {
					return err
				}
			}
			if h := s.SHA256(); h != "" {
				if err := set(key(ixSHA256, []byte(h), idb), nil); err != nil {
					return err
				}
			}
			if s.Name != "" {
				if err := set(key(ixName, []byte(s.Name), idb), nil); err != nil {
					return err
				}
			}
		}
		for _, k := range r.Signers {
			if err := set(key(ixSigner, []byte(k), idb), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Get returns the record of attestation id, or ErrNotFound.
func (ix *Index) Get(id cid.Cid) (Record, error) {
	var r Record
	err := ix.db.View(func(txn *badger.Txn) error {
		var err error
		r, err = getRecord(txn, id.Bytes())
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, err
}

func getRecord(txn *badger.Txn, idb []byte) (Record, error) {
	var r Record
	it, err := txn.Get(key(ixRecord, idb))
	if err != nil {
		return r, err
	}
	err = it.Value(func(v []byte) error { return json.Unmarshal(v, &r) })
	return r, err
}

// Query selects attestations. Empty fields match everything; set fields
// must all match.
type Query struct {
	Subject       string // subject CID (as in ipfs://<cid>), any CID string form
	SHA256        string // subject sha256 digest, hex
	Name          string // subject name, e.g. a Nix store path
	PredicateType string
	Signer        string // key id named by a signature
	Limit         int    // 0 means no limit
}

// Search returns the matching records in log order.
func (ix *Index) Search(q Query) ([]Record, error) {
	var prefix []byte
	if q.Subject != "" {
		c, err := cid.Decode(q.Subject)
		if err != nil {
			return nil, fmt.Errorf("search: subject %q is not a CID: %w", q.Subject, err)
		}
		q.Subject = c.String()
	}
	switch {
	case q.Subject != "":
		prefix = key(ixSubject, []byte(q.Subject), nil)
	case q.SHA256 != "":
		prefix = key(ixSHA256, []byte(q.SHA256), nil)
	case q.Name != "":
		prefix = key(ixName, []byte(q.Name), nil)
	case q.PredicateType != "":
		prefix = key(ixPredicate, []byte(q.PredicateType), nil)
	case q.Signer != "":
		prefix = key(ixSigner, []byte(q.Signer), nil)
	}
	var out []Record
	err := ix.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = prefix == nil
		if prefix == nil {
			opts.Prefix = ixLog
		} else {
			opts.Prefix = prefix
		}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var idb []byte
			if prefix == nil {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				idb = v
			} else {
				idb = bytes.Clone(it.Item().Key()[len(prefix):])
			}
			r, err := getRecord(txn, idb)
			if err != nil {
				return fmt.Errorf("index entry without record: %w", err)
			}
			if q.matches(r) {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Record) int {
		switch {
		case a.LogIndex < b.LogIndex:
			return -1
		case a.LogIndex > b.LogIndex:
			return 1
		}
		return 0
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (q Query) matches(r Record) bool {
	if q.PredicateType != "" && r.PredicateType != q.PredicateType {
		return false
	}
	if q.Signer != "" && !slices.Contains(r.Signers, q.Signer) {
		return false
	}
	if q.Subject == "" && q.SHA256 == "" && q.Name == "" {
		return true
	}
	for _, s := range r.Subjects {
		c, _ := s.CID()
		if (q.Subject == "" || c.Defined() && c.String() == q.Subject) &&
			(q.SHA256 == "" || s.SHA256() == q.SHA256) &&
			(q.Name == "" || s.Name == q.Name) {
			return true
		}
	}
	return false
}
