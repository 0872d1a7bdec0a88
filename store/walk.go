package store

import (
	"bytes"
	"context"
	"errors"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	dagpb "github.com/ipld/go-codec-dagpb"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/ipld/go-ipld-prime/traversal"
)

// Walk calls fn once for every block of the DAG under root, in depth-first
// pre-order (a block before its children, children in link order), visiting
// a block reachable along several paths only the first time. This is the
// order of a trustless-gateway CAR with dups=n.
//
// Links are read from dag-pb, dag-cbor and dag-json blocks; raw blocks have
// none. Every block is read through the verifying blockstore. A block that
// is not stored stops the walk with a *MissingBlockError naming it and its
// parent; a block of another codec with an *UnsupportedCodecError; a block
// that does not decode with a *DecodeError. An error from fn stops the walk
// and is returned as is.
func (s *Store) Walk(ctx context.Context, root cid.Cid, fn func(blocks.Block) error) error {
	return s.walk(ctx, root, map[string]struct{}{}, leafLoad, func(_ cid.Cid, b blocks.Block) error {
		return fn(b)
	})
}

// leafMode says what walk does with raw-codec blocks, which have no links.
type leafMode int

const (
	leafLoad leafMode = iota // read and verify them, pass them to fn
	leafHas                  // check they are stored, pass nil to fn
	leafSkip                 // neither read nor check them, pass nil to fn
)

type walkItem struct {
	c, parent cid.Cid
}

// walk is Walk with a seen set shared across calls (keyed by CID bytes) and a
// leafMode. fn receives a nil block for raw leaves unless mode is leafLoad.
func (s *Store) walk(ctx context.Context, root cid.Cid, seen map[string]struct{}, mode leafMode, fn func(cid.Cid, blocks.Block) error) error {
	stack := []walkItem{{c: root}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := it.c.KeyString()
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		if it.c.Type() == cid.Raw && mode != leafLoad {
			if mode == leafHas {
				ok, err := s.bs.Has(ctx, it.c)
				if err != nil {
					return err
				}
				if !ok {
					return &MissingBlockError{Cid: it.c, Parent: it.parent}
				}
			}
			if err := fn(it.c, nil); err != nil {
				return err
			}
			continue
		}
		blk, err := s.bs.Get(ctx, it.c)
		if errors.Is(err, ErrNotFound) {
			return &MissingBlockError{Cid: it.c, Parent: it.parent}
		}
		if err != nil {
			return err
		}
		if err := fn(it.c, blk); err != nil {
			return err
		}
		links, err := Links(blk)
		if err != nil {
			return err
		}
		for i := len(links) - 1; i >= 0; i-- {
			if _, ok := seen[links[i].KeyString()]; !ok {
				stack = append(stack, walkItem{c: links[i], parent: it.c})
			}
		}
	}
	return nil
}

// Links returns the CIDs a block links to, in the order they appear in the
// block: dag-pb Links in order, dag-cbor and dag-json links in the data
// model's map/list order. Raw blocks (and identity-hash CIDs of raw) have no
// links.
func Links(blk blocks.Block) ([]cid.Cid, error) {
	c := blk.Cid()
	switch c.Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		nb := dagpb.Type.PBNode.NewBuilder()
		if err := dagpb.DecodeBytes(nb, blk.RawData()); err != nil {
			return nil, &DecodeError{Cid: c, Err: err}
		}
		n, ok := nb.Build().(dagpb.PBNode)
		if !ok {
			return nil, &DecodeError{Cid: c, Err: errors.New("not a PBNode")}
		}
		out := make([]cid.Cid, 0, n.FieldLinks().Length())
		li := n.FieldLinks().Iterator()
		for !li.Done() {
			_, l := li.Next()
			cl, ok := l.FieldHash().Link().(cidlink.Link)
			if !ok {
				return nil, &DecodeError{Cid: c, Err: errors.New("link is not a CID")}
			}
			out = append(out, cl.Cid)
		}
		return out, nil
	case cid.DagCBOR, cid.DagJSON:
		nb := basicnode.Prototype.Any.NewBuilder()
		var err error
		if c.Type() == cid.DagCBOR {
			err = dagcbor.Decode(nb, bytes.NewReader(blk.RawData()))
		} else {
			err = dagjson.Decode(nb, bytes.NewReader(blk.RawData()))
		}
		if err != nil {
			return nil, &DecodeError{Cid: c, Err: err}
		}
		ls, err := traversal.SelectLinks(nb.Build())
		if err != nil {
			return nil, &DecodeError{Cid: c, Err: err}
		}
		return linkCids(c, ls)
	default:
		return nil, &UnsupportedCodecError{Cid: c}
	}
}

func linkCids(c cid.Cid, ls []datamodel.Link) ([]cid.Cid, error) {
	out := make([]cid.Cid, 0, len(ls))
	for _, l := range ls {
		cl, ok := l.(cidlink.Link)
		if !ok {
			return nil, &DecodeError{Cid: c, Err: errors.New("link is not a CID")}
		}
		out = append(out, cl.Cid)
	}
	return out, nil
}
