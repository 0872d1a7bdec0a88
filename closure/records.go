package closure

import (
	"bytes"
	"context"
	"fmt"

	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/bindnode"
	"github.com/ipld/go-ipld-prime/schema"
	mh "github.com/multiformats/go-multihash"
)

var (
	storePathInfoType schema.Type
	closureType       schema.Type
)

func init() {
	ts, err := schemas.TypeSystem()
	if err != nil {
		panic(fmt.Sprintf("closure: records schema: %v", err))
	}
	storePathInfoType = ts.TypeByName("StorePathInfo")
	closureType = ts.TypeByName("Closure")
	// Fail at start-up, not at first use, if Go types and schema disagree.
	bindnode.Prototype((*StorePathInfo)(nil), storePathInfoType)
	bindnode.Prototype((*Closure)(nil), closureType)
}

// StorePathInfo is the stored record of one store path (schema type
// StorePathInfo in schemas/records.ipldsch).
type StorePathInfo struct {
	StorePath  string
	NarHash    string // "sha256:<nixbase32>"
	NarSize    int64
	References []string
	Deriver    *string
	Ca         *string
	Signatures []string
	Nar        datamodel.Link
}

// ClosureEntry is one path of a Closure and the CID of its StorePathInfo.
type ClosureEntry struct {
	Path string
	Info datamodel.Link
}

// Closure is the stored record of a complete closure (schema type Closure).
type Closure struct {
	Root     string
	StoreDir string
	Paths    []ClosureEntry
}

// PathInfo returns the record as a PathInfo.
func (r *StorePathInfo) PathInfo() (PathInfo, error) {
	h, err := ParseNarHash(r.NarHash)
	if err != nil {
		return PathInfo{}, fmt.Errorf("%w: %s: %v", ErrBadRecord, r.StorePath, err)
	}
	pi := PathInfo{Path: r.StorePath, NarHash: h, NarSize: r.NarSize, References: r.References, Signatures: r.Signatures}
	if r.Deriver != nil {
		pi.Deriver = *r.Deriver
	}
	if r.Ca != nil {
		pi.CA = *r.Ca
	}
	return pi, nil
}

// NARCid is the CID of the record's NAR.
func (r *StorePathInfo) NARCid() cid.Cid { return linkCid(r.Nar) }

// newStorePathInfo builds the record for pi whose NAR is narCid.
func newStorePathInfo(pi PathInfo, narCid cid.Cid) *StorePathInfo {
	r := &StorePathInfo{
		StorePath:  pi.Path,
		NarHash:    pi.NarHashString(),
		NarSize:    pi.NarSize,
		References: pi.References,
		Signatures: pi.Signatures,
		Nar:        cidlink.Link{Cid: narCid},
	}
	if r.References == nil {
		r.References = []string{}
	}
	if r.Signatures == nil {
		r.Signatures = []string{}
	}
	if pi.Deriver != "" {
		d := pi.Deriver
		r.Deriver = &d
	}
	if pi.CA != "" {
		ca := pi.CA
		r.Ca = &ca
	}
	return r
}

func linkCid(l datamodel.Link) cid.Cid {
	if cl, ok := l.(cidlink.Link); ok {
		return cl.Cid
	}
	if l == nil {
		return cid.Undef
	}
	c, err := cid.Decode(l.String())
	if err != nil {
		return cid.Undef
	}
	return c
}

var recordCidBuilder = cid.V1Builder{Codec: cid.DagCBOR, MhType: mh.SHA2_256, MhLength: -1}

// encodeRecord encodes v (a *StorePathInfo or *Closure) as DAG-CBOR.
func encodeRecord(v any, t schema.Type) (blocks.Block, error) {
	n := bindnode.Wrap(v, t)
	var buf bytes.Buffer
	if err := dagcbor.Encode(n.Representation(), &buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t.Name(), err)
	}
	c, err := recordCidBuilder.Sum(buf.Bytes())
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(buf.Bytes(), c)
}

// decodeRecord decodes DAG-CBOR data into a new value of t's Go type.
func decodeRecord[T any](data []byte, t schema.Type) (*T, error) {
	proto := bindnode.Prototype((*T)(nil), t)
	nb := proto.Representation().NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadRecord, t.Name(), err)
	}
	v, ok := bindnode.Unwrap(nb.Build()).(*T)
	if !ok {
		return nil, fmt.Errorf("%w: %s: unexpected Go type", ErrBadRecord, t.Name())
	}
	return v, nil
}

// putRecord stores a record block and returns its CID.
func putRecord(ctx context.Context, st *store.Store, v any, t schema.Type) (cid.Cid, error) {
	blk, err := encodeRecord(v, t)
	if err != nil {
		return cid.Undef, err
	}
	if err := st.Blockstore().Put(ctx, blk); err != nil {
		return cid.Undef, fmt.Errorf("store %s: %w", t.Name(), err)
	}
	return blk.Cid(), nil
}

// LoadStorePathInfo reads the StorePathInfo record c.
func LoadStorePathInfo(ctx context.Context, bs Blocks, c cid.Cid) (*StorePathInfo, error) {
	if c.Type() != cid.DagCBOR {
		return nil, fmt.Errorf("%w: %s is not a DAG-CBOR block", ErrBadRecord, c)
	}
	blk, err := bs.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("load StorePathInfo %s: %w", c, err)
	}
	return decodeRecord[StorePathInfo](blk.RawData(), storePathInfoType)
}

// LoadClosure reads the Closure record c.
func LoadClosure(ctx context.Context, bs Blocks, c cid.Cid) (*Closure, error) {
	if c.Type() != cid.DagCBOR {
		return nil, fmt.Errorf("%w: %s is not a DAG-CBOR block", ErrBadRecord, c)
	}
	blk, err := bs.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("load Closure %s: %w", c, err)
	}
	return decodeRecord[Closure](blk.RawData(), closureType)
}

func cidLink(c cid.Cid) datamodel.Link { return cidlink.Link{Cid: c} }

// decodeMultihashDigest returns the SHA-256 digest inside c.
func decodeMultihashDigest(c cid.Cid) ([]byte, error) {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, err
	}
	if d.Code != mh.SHA2_256 {
		return nil, fmt.Errorf("%w: %s is not a sha2-256 CID", ErrBadRecord, c)
	}
	return d.Digest, nil
}
