package closure

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzCheckNAR: CheckNAR never panics or hangs, fails only with ErrBadNAR,
// and accepts exactly what it accepted before when given the same bytes
// again (it is a pure function of its input).
func FuzzCheckNAR(f *testing.F) {
	f.Add(goodNAR(f))
	f.Add(narTokens("nix-archive-1", "(", "type", "regular", "executable", "", "contents", "x", ")"))
	f.Add(narTokens("nix-archive-1", "(", "type", "symlink", "target", "/a", ")"))
	f.Add(narDir([2]string{"..", "y"}))
	f.Add(narDir([2]string{"a", "x"}, [2]string{"a", "y"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckNAR(bytes.NewReader(data))
		if err != nil && !errors.Is(err, ErrBadNAR) {
			t.Fatalf("error not ErrBadNAR: %v", err)
		}
		if err2 := CheckNAR(bytes.NewReader(data)); (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %v vs %v", err, err2)
		}
	})
}

// FuzzParseNarinfo: ParseNarinfo never panics; what it accepts has a valid
// store path, a sha256 NarHash, a NarSize and references in the store dir.
func FuzzParseNarinfo(f *testing.F) {
	f.Add("StorePath: " + spA + "\nURL: nar/1.nar.xz\nCompression: xz\nNarHash: sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv\nNarSize: 328\nReferences: zi8h56j0sij13q042nl4wqfffpw8xhzd-lib\n")
	f.Add("StorePath: " + spA + "\nURL: nar/x.nar\nCompression: none\nNarHash: sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=\nNarSize: 1\nReferences: \nSig: k:AAAA\n")
	f.Add("StorePath: x\n")
	f.Fuzz(func(t *testing.T, text string) {
		ni, err := ParseNarinfo(strings.NewReader(text), "")
		if err != nil {
			if !errors.Is(err, ErrBadPathInfo) && !errors.Is(err, ErrForeignStoreDir) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		pi, err := narinfoPathInfo(ni, DefaultStoreDir)
		if err != nil {
			t.Fatalf("accepted narinfo does not convert: %v", err)
		}
		if checkStorePath(pi.Path, DefaultStoreDir, "") != nil || pi.NarSize <= 0 || pi.NarHash == nil {
			t.Fatalf("accepted bad narinfo: %+v", pi)
		}
		for _, r := range pi.References {
			if checkStorePath(r, DefaultStoreDir, pi.Path) != nil {
				t.Fatalf("accepted bad reference %q", r)
			}
		}
	})
}

// FuzzParsePathInfoJSON: never panics; accepted infos are sorted, unique and
// well-formed.
func FuzzParsePathInfoJSON(f *testing.F) {
	f.Add([]byte(`[{"path":"` + spA + `","narHash":"sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=","narSize":328,"references":["` + spB + `"]}]`))
	f.Add([]byte(`{"` + spB + `":{"narHash":"sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv","narSize":1,"references":[]}}`))
	f.Add([]byte(`{"` + spB + `":null}`))
	f.Add([]byte(`[]`))
	// Repeated member names (refused) and case variants (not the member).
	f.Add([]byte(`[{"path":"` + spA + `","narHash":"sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv","narHash":"sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=","narSize":1}]`))
	f.Add([]byte(`{"` + spB + `":{"narHash":"sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=","narSize":1},"` + spB + `":{"narHash":"sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=","narSize":2}}`))
	f.Add([]byte(`[{"path":"` + spA + `","NarHash":"sha256:xyz","narHash":"sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=","narSize":1,"NarSize":-1}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		infos, err := ParsePathInfoJSON(data, "")
		if err != nil {
			if !errors.Is(err, ErrBadPathInfo) && !errors.Is(err, ErrForeignStoreDir) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for i, pi := range infos {
			if i > 0 && infos[i-1].Path >= pi.Path {
				t.Fatalf("not sorted/unique at %s", pi.Path)
			}
			if pi.NarHash == nil || pi.NarSize <= 0 || checkStorePath(pi.Path, DefaultStoreDir, "") != nil {
				t.Fatalf("accepted bad info %+v", pi)
			}
		}
	})
}
