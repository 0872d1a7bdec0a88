package closure_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
)

// Import the closure of a store path from a binary cache written by
// `nix copy --to file://DIR`, verify it, and list its paths.
func Example() {
	dir, _ := os.MkdirTemp("", "closure-example")
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st := store.New(db, store.Options{})
	defer st.Close() // before db.Close
	ctx := context.Background()

	abs, _ := filepath.Abs("testdata/cache")
	cache, err := closure.NewBinaryCache(ctx, "file://"+abs, nil)
	if err != nil {
		log.Fatal(err)
	}
	res, err := closure.Import(ctx, st, db, cache, "/nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib", closure.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := closure.Verify(ctx, st, res.Closure); err != nil {
		log.Fatal(err)
	}
	_, entries, err := closure.Load(ctx, st, res.Closure)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Path, e.NarHashString(), e.NarSize)
	}
	// Output:
	// /nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib sha256:19rqsvp4ld2m4zzgv6d2qc84hq6kvbqq2i37l9450lrb01py3pxz 1240
}
