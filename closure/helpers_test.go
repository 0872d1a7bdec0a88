package closure

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"sync"
	"testing"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// newStore opens a real badger store in a temporary directory.
func newStore(tb testing.TB) (*store.Store, *badger.DB) {
	tb.Helper()
	db, err := kv.Open(tb.TempDir(), kv.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	st := store.New(db, store.Options{})
	tb.Cleanup(func() { st.Close() }) // before db.Close
	return st, db
}

// testClosure builds a small closure with references, symlinks, an
// executable, an empty file and an empty directory: lib ← app ← top, plus
// data (a few hundred KiB) referenced by top. It returns top's path and the
// paths in build order.
func testClosure(n *nixtest.Nix, salt string) (string, []string) {
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[salt]; ok {
		return p[3], p
	}
	paths := n.Build(
		nixtest.Drv{Name: "lib", Script: "/bin/mkdir -p $out/lib $out/share/empty; echo " + salt + " > $out/lib/a.txt; : > $out/lib/empty; /bin/ln -s a.txt $out/lib/link; /bin/ln -s /nonexistent $out/dangling; printf '#!/bin/sh\\necho hi\\n' > $out/lib/run; /bin/chmod +x $out/lib/run"},
		nixtest.Drv{Name: "data", Script: "/bin/mkdir -p $out; /usr/bin/seq 1 60000 > $out/numbers; echo " + salt + " >> $out/numbers"},
		nixtest.Drv{Name: "app", Script: "/bin/mkdir -p $out/bin; echo '#!${lib}/lib/run' > $out/bin/app; /bin/chmod +x $out/bin/app; /bin/ln -s ${lib}/lib $out/lib"},
		nixtest.Drv{Name: "top", Script: "/bin/mkdir -p $out; echo ${app} ${data} > $out/refs; echo self $out >> $out/refs"},
	)
	built[salt] = paths
	return paths[3], paths
}

var (
	builtMu sync.Mutex
	built   = map[string][]string{}
)

// lyingSource wraps a Source and rewrites path infos.
type lyingSource struct {
	Source
	edit func(*PathInfo)
	nar  func(PathInfo, io.ReadCloser) io.ReadCloser
}

func (l *lyingSource) Closure(ctx context.Context, root string) ([]PathInfo, error) {
	infos, err := l.Source.Closure(ctx, root)
	for i := range infos {
		if l.edit != nil {
			l.edit(&infos[i])
		}
	}
	return infos, err
}

func (l *lyingSource) NAR(ctx context.Context, pi PathInfo) (io.ReadCloser, error) {
	rc, err := l.Source.NAR(ctx, pi)
	if err != nil || l.nar == nil {
		return rc, err
	}
	return l.nar(pi, rc), nil
}

// narTokens builds NAR bytes from tokens (strings, each as a length-prefixed,
// zero-padded wire string), so tests can write NARs go-nix's writer refuses.
func narTokens(tokens ...string) []byte {
	var b bytes.Buffer
	for _, t := range tokens {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(t)))
		b.Write(n[:])
		b.WriteString(t)
		if pad := (8 - len(t)%8) % 8; pad > 0 {
			b.Write(make([]byte, pad))
		}
	}
	return b.Bytes()
}

// narDir returns the tokens of a NAR whose root directory has the given
// regular-file entries (name, contents), in the order given.
func narDir(entries ...[2]string) []byte {
	toks := []string{"nix-archive-1", "(", "type", "directory"}
	for _, e := range entries {
		toks = append(toks, "entry", "(", "name", e[0], "node", "(", "type", "regular", "contents", e[1], ")", ")")
	}
	toks = append(toks, ")")
	return narTokens(toks...)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func storeExportOptions() store.ExportOptions { return store.ExportOptions{} }

func rawLeafForTest(tb testing.TB) cid.Cid {
	h, err := mh.Sum([]byte("nar"), mh.SHA2_256, -1)
	if err != nil {
		tb.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}
