package audit

import (
	"errors"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is the RFC 6962 hasher of audit-log trees.
var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the RFC 6962 leaf hash of one audit line (its bytes without
// the newline): SHA-256(0x00 || line).
func LeafHash(line []byte) []byte { return hasher.HashLeaf(line) }

// Tree is the RFC 6962 Merkle tree over the lines of an audit log, kept as
// a compact range: O(log N) hashes summarise N lines, so the root after
// appending k lines costs O(k) hashing whatever N is.
type Tree struct {
	r *compact.Range
	// new holds the leaf hashes appended since the tree was loaded, so that
	// a consistency proof from the loaded size can be built without
	// touching older lines.
	base uint64
	old  [][]byte // the compact range hashes at base
	new  [][]byte
}

// NewTree returns the empty tree.
func NewTree() *Tree { return &Tree{r: rangeFactory.NewEmptyRange(0)} }

// LoadTree restores a tree of size lines from its compact range hashes (see
// Hashes).
func LoadTree(size uint64, hashes [][]byte) (*Tree, error) {
	hashes = slices.Clone(hashes)
	r, err := rangeFactory.NewRange(0, size, slices.Clone(hashes))
	if err != nil {
		return nil, fmt.Errorf("audit: load tree of size %d: %w", size, err)
	}
	return &Tree{r: r, base: size, old: hashes}, nil
}

// Append adds one line (without its newline).
func (t *Tree) Append(line []byte) { t.AppendLeafHash(LeafHash(line)) }

// AppendLeafHash adds one leaf by its hash.
func (t *Tree) AppendLeafHash(h []byte) {
	_ = t.r.Append(h, nil) // cannot fail for a range starting at 0
	t.new = append(t.new, h)
}

// Size is the number of lines.
func (t *Tree) Size() uint64 { return t.r.End() }

// Root is the RFC 6962 root hash (SHA-256 of the empty string when empty).
func (t *Tree) Root() []byte {
	if t.r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, _ := t.r.GetRootHash(nil)
	return root
}

// Hashes returns the compact range: the hashes that, with Size, restore the
// tree (LoadTree). There are at most log2(Size)+1 of them.
func (t *Tree) Hashes() [][]byte { return slices.Clone(t.r.Hashes()) }

// ErrProofBase is returned when a consistency proof is asked from a size
// other than the one the tree was loaded at.
var ErrProofBase = errors.New("consistency proof must start at the loaded size")

// ConsistencyProof returns the RFC 6962 consistency proof from the size the
// tree was loaded at (LoadTree) to its current size. It uses only the loaded
// compact range and the leaves appended since, so its cost is proportional
// to the new lines. An empty proof is returned when nothing was appended or
// the tree was loaded empty.
func (t *Tree) ConsistencyProof(from uint64) ([][]byte, error) {
	if from != t.base {
		return nil, fmt.Errorf("%w: asked %d, loaded %d", ErrProofBase, from, t.base)
	}
	to := t.Size()
	if from == 0 || from == to {
		return [][]byte{}, nil
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, err
	}
	oldIDs := compact.RangeNodes(0, from, nil)
	hashes := make([][]byte, 0, len(nodes.IDs))
	for _, id := range nodes.IDs {
		b, e := id.Coverage()
		var h []byte
		if e <= from {
			for i, oid := range oldIDs {
				if oid == id {
					h = t.old[i]
				}
			}
			if h == nil {
				return nil, fmt.Errorf("audit: consistency proof %d→%d needs node %v outside the stored range", from, to, id)
			}
		} else {
			if b < from {
				return nil, fmt.Errorf("audit: consistency proof %d→%d needs node %v straddling the old size", from, to, id)
			}
			// Every node of a proof is a perfect subtree, so the compact
			// range of its leaves is that one node.
			if e > to {
				return nil, fmt.Errorf("audit: consistency proof %d→%d names node %v beyond the tree", from, to, id)
			}
			r := rangeFactory.NewEmptyRange(b)
			for _, lh := range t.new[b-from : e-from] {
				_ = r.Append(lh, nil)
			}
			h = r.Hashes()[0]
		}
		hashes = append(hashes, h)
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// VerifyConsistency checks an RFC 6962 consistency proof between two roots.
func VerifyConsistency(size1, size2 uint64, prf [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(hasher, size1, size2, prf, root1, root2)
}
