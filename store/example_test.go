package store_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
)

// ExampleStore_Add adds a small text as a UnixFS file, prints its CID (the
// one `ipfs add --cid-version=1` prints for the same bytes) and reads it back.
func ExampleStore_Add() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	s := store.New(db, store.Options{})
	ctx := context.Background()

	c, err := s.Add(ctx, strings.NewReader("hello world\n"), store.AddOptions{Pin: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(c)

	f, err := s.Cat(ctx, c)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes: %q\n", f.Size(), b)
	// Output:
	// bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4
	// 12 bytes: "hello world\n"
}
