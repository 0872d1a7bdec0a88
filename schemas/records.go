package schemas

import (
	_ "embed"
	"errors"
	"fmt"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/node/bindnode"
	"github.com/ipld/go-ipld-prime/schema"
	mh "github.com/multiformats/go-multihash"
)

// RecordsSchema is the IPLD schema (DSL) of every stored record.
//
//go:embed records.ipldsch
var RecordsSchema []byte

// Patch is the Go binding of the Patch schema type.
type Patch struct {
	Bytes        cid.Cid
	Sha256       []byte
	Size         int64
	Files        []string
	Workspace    string
	ProposalPath string
}

// AuditLogSnapshot is the Go binding of the AuditLogSnapshot schema type.
type AuditLogSnapshot struct {
	Workspace string
	Bytes     cid.Cid
	Size      int64
	Lines     int64
	Root      []byte
	Previous  *cid.Cid
}

// StorePathInfo is the Go binding of the StorePathInfo schema type.
type StorePathInfo struct {
	StorePath  string
	NarHash    string
	NarSize    int64
	References []string
	Deriver    *string
	Ca         *string
	Signatures []string
	Nar        cid.Cid
}

// ClosureEntry is the Go binding of the ClosureEntry schema type.
type ClosureEntry struct {
	Path string
	Info cid.Cid
}

// Closure is the Go binding of the Closure schema type.
type Closure struct {
	Root     string
	StoreDir string
	Paths    []ClosureEntry
}

// Record is implemented by the pointer to each record type.
type Record interface {
	// RecordType names the record's IPLD schema type.
	RecordType() string
}

func (*Patch) RecordType() string            { return "Patch" }
func (*AuditLogSnapshot) RecordType() string { return "AuditLogSnapshot" }
func (*StorePathInfo) RecordType() string    { return "StorePathInfo" }
func (*ClosureEntry) RecordType() string     { return "ClosureEntry" }
func (*Closure) RecordType() string          { return "Closure" }

// ErrRecord is returned when bytes do not decode as the requested record.
var ErrRecord = errors.New("invalid record")

var typeSystem = sync.OnceValues(func() (*schema.TypeSystem, error) {
	ts, err := ipld.LoadSchemaBytes(RecordsSchema)
	if err != nil {
		return nil, fmt.Errorf("load records.ipldsch: %w", err)
	}
	return ts, nil
})

// TypeSystem returns the loaded records schema.
func TypeSystem() (*schema.TypeSystem, error) { return typeSystem() }

// Prototype returns the bindnode prototype binding r's Go type to its schema
// type. It panics if the Go type does not match the schema (a programming
// error that the package tests catch).
func Prototype(r Record) (schema.TypedPrototype, error) {
	typ, err := recordType(r)
	if err != nil {
		return nil, err
	}
	return bindnode.Prototype(r, typ), nil
}

func recordType(r Record) (schema.Type, error) {
	ts, err := typeSystem()
	if err != nil {
		return nil, err
	}
	typ := ts.TypeByName(r.RecordType())
	if typ == nil {
		return nil, fmt.Errorf("schema has no type %s", r.RecordType())
	}
	return typ, nil
}

// CIDPrefix is the CID prefix of every record: CIDv1, dag-cbor, sha2-256.
var CIDPrefix = cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_256, MhLength: -1}

// Encode encodes r as DAG-CBOR through its schema type.
func Encode(r Record) ([]byte, error) {
	typ, err := recordType(r)
	if err != nil {
		return nil, err
	}
	b, err := ipld.Marshal(dagcbor.Encode, r, typ)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.RecordType(), err)
	}
	return b, nil
}

// EncodeBlock encodes r and returns it as a block with its CID.
func EncodeBlock(r Record) (blocks.Block, error) {
	b, err := Encode(r)
	if err != nil {
		return nil, err
	}
	c, err := CIDPrefix.Sum(b)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(b, c)
}

// Decode decodes DAG-CBOR bytes into r, checking them against r's schema
// type. Failures match ErrRecord.
func Decode(data []byte, r Record) error {
	typ, err := recordType(r)
	if err != nil {
		return err
	}
	if _, err := ipld.Unmarshal(data, dagcbor.Decode, r, typ); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrRecord, r.RecordType(), err)
	}
	return nil
}

// DecodeBlock decodes a record block, checking that its CID is a dag-cbor
// CID (the block store has already checked the hash).
func DecodeBlock(b blocks.Block, r Record) error {
	if b.Cid().Type() != cid.DagCBOR {
		return fmt.Errorf("%w: %s: block %s is not dag-cbor", ErrRecord, r.RecordType(), b.Cid())
	}
	return Decode(b.RawData(), r)
}
