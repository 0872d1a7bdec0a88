package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	dag "github.com/ipfs/boxo/ipld/merkledag"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	car "github.com/ipld/go-car/v2"
)

// ErrNotInCAR is returned by FileFromCAR when a block of the file is not in
// the CAR.
var ErrNotInCAR = errors.New("block not in the CAR")

// FileFromCAR reads the UnixFS file root (a dag-pb file or a raw block)
// from the blocks of a CAR (v1 or v2), checking every block's bytes against
// its CID, and, when sum is not nil, the file's SHA-256 against sum. At most
// limit bytes are read. An auditor uses it to recover an attested
// snapshot's exact bytes from a bundle's CAR (agentix-store bundle --car).
func FileFromCAR(carBytes []byte, root cid.Cid, sum []byte, limit int64) ([]byte, error) {
	br, err := car.NewBlockReader(bytes.NewReader(carBytes))
	if err != nil {
		return nil, fmt.Errorf("car: %w", err)
	}
	m := carGetter{}
	for {
		blk, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("car: %w", err)
		}
		c, err := blk.Cid().Prefix().Sum(blk.RawData())
		if err != nil || !c.Equals(blk.Cid()) {
			return nil, fmt.Errorf("car: block %s does not hash to its CID", blk.Cid())
		}
		m[blk.Cid().KeyString()] = blk
	}
	ctx := context.Background()
	nd, err := m.Get(ctx, root)
	if err != nil {
		return nil, err
	}
	dr, err := uio.NewDagReader(ctx, nd, m)
	if err != nil {
		return nil, fmt.Errorf("car: file %s: %w", root, err)
	}
	b, err := io.ReadAll(io.LimitReader(dr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("car: file %s: %w", root, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("car: file %s larger than %d bytes", root, limit)
	}
	if sum != nil {
		if s := sha256.Sum256(b); !bytes.Equal(s[:], sum) {
			return nil, fmt.Errorf("car: file %s does not have the attested sha256", root)
		}
	}
	return b, nil
}

// carGetter is an ipld.NodeGetter over the blocks of a CAR.
type carGetter map[string]blocks.Block

func (m carGetter) Get(_ context.Context, c cid.Cid) (ipld.Node, error) {
	blk, ok := m[c.KeyString()]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotInCAR, c)
	}
	switch c.Type() {
	case cid.Raw:
		return dag.DecodeRawBlock(blk)
	case cid.DagProtobuf:
		return dag.DecodeProtobufBlock(blk)
	}
	return nil, fmt.Errorf("car: block %s is neither raw nor dag-pb", c)
}

func (m carGetter) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	ch := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		nd, err := m.Get(ctx, c)
		ch <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(ch)
	return ch
}
