package audit

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
)

// refRoot is the RFC 6962 tree hash computed straight from the definition.
func refRoot(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		s := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return s[:]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := refRoot(leaves[:k]), refRoot(leaves[k:])
	s := sha256.Sum256(append(append([]byte{1}, l...), r...))
	return s[:]
}

func TestTreeRootAndConsistency(t *testing.T) {
	var leaves [][]byte
	for i := range 40 {
		leaves = append(leaves, []byte(fmt.Sprintf(`{"action": "x%d"}`, i)))
	}
	for from := 0; from <= 20; from++ {
		for _, to := range []int{from, from + 1, from + 3, 33, 40} {
			if to < from {
				continue
			}
			t.Run(fmt.Sprintf("%d-%d", from, to), func(t *testing.T) {
				base := NewTree()
				for _, l := range leaves[:from] {
					base.Append(l)
				}
				if !bytes.Equal(base.Root(), refRoot(leaves[:from])) {
					t.Fatalf("root at %d differs from the RFC 6962 definition", from)
				}
				tr, err := LoadTree(uint64(from), base.Hashes())
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range leaves[from:to] {
					tr.Append(l)
				}
				if !bytes.Equal(tr.Root(), refRoot(leaves[:to])) {
					t.Fatalf("root at %d differs from the RFC 6962 definition", to)
				}
				prf, err := tr.ConsistencyProof(uint64(from))
				if err != nil {
					t.Fatal(err)
				}
				if from > 0 {
					if err := VerifyConsistency(uint64(from), uint64(to), prf, base.Root(), tr.Root()); err != nil {
						t.Fatalf("proof does not verify: %v", err)
					}
					if to > from {
						bad := refRoot(append([][]byte{[]byte("edited")}, leaves[1:from]...))
						if VerifyConsistency(uint64(from), uint64(to), prf, bad, tr.Root()) == nil {
							t.Fatal("proof verifies against a tampered old root")
						}
					}
				}
			})
		}
	}
	if _, err := NewTree().ConsistencyProof(3); err == nil {
		t.Fatal("proof from a size the tree was not loaded at succeeded")
	}
}
