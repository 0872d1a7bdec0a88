package tlog_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/tlog"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Append entries, read the signed checkpoint and check an inclusion proof
// against it, as an outside verifier would.
func Example() {
	dir, _ := os.MkdirTemp("", "log-example")
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/node1")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)

	l, err := tlog.Open(db, tlog.Options{Signer: signer}) // origin: the key's name
	if err != nil {
		panic(err)
	}
	defer l.Close()
	ctx := context.Background()
	for _, e := range []string{"alpha", "beta", "gamma"} {
		idx, err := l.Append(ctx, []byte(e)) // returns once durable
		if err != nil {
			panic(err)
		}
		fmt.Println("appended", e, "at", idx)
	}

	signed, _ := l.Checkpoint(ctx)
	cp, err := tlog.VerifyCheckpoint(signed.Note, verifier)
	if err != nil {
		panic(err)
	}
	fmt.Println("checkpoint", cp.Origin, cp.Size)

	p, _ := l.InclusionProof(ctx, 1, cp.Size)
	err = proof.VerifyInclusion(rfc6962.DefaultHasher, 1, cp.Size, tlog.LeafHash([]byte("beta")), p, cp.Hash)
	fmt.Println("inclusion of beta verifies:", err == nil)
	// Output:
	// appended alpha at 0
	// appended beta at 1
	// appended gamma at 2
	// checkpoint example.com/node1 3
	// inclusion of beta verifies: true
}
