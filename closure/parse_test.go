package closure

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/nix-community/go-nix/pkg/nar"

	"github.com/agentix/agentix-store/schemas"
)

// goodNAR is a NAR written by go-nix's writer: a directory with a file, an
// executable, an empty file and a symlink.
func goodNAR(tb testing.TB) []byte {
	tb.Helper()
	var b bytes.Buffer
	w, err := nar.NewWriter(&b)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range []struct {
		hdr  nar.Header
		data string
	}{
		{nar.Header{Path: "/", Type: nar.TypeDirectory}, ""},
		{nar.Header{Path: "/a", Type: nar.TypeRegular, Size: 5}, "hello"},
		{nar.Header{Path: "/b", Type: nar.TypeRegular, Executable: true, Size: 2}, "#!"},
		{nar.Header{Path: "/c", Type: nar.TypeRegular}, ""},
		{nar.Header{Path: "/d", Type: nar.TypeSymlink, LinkTarget: "a"}, ""},
		{nar.Header{Path: "/e", Type: nar.TypeDirectory}, ""},
	} {
		if err := w.WriteHeader(&h.hdr); err != nil {
			tb.Fatal(err)
		}
		if h.data != "" {
			w.Write([]byte(h.data))
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func TestCheckNAR(t *testing.T) {
	good := goodNAR(t)
	file := narTokens("nix-archive-1", "(", "type", "regular", "contents", "x", ")")
	tests := []struct {
		name   string
		nar    []byte
		reason string // substring of the error; "" = valid
	}{
		{"valid tree", good, ""},
		{"valid single file", file, ""},
		{"valid empty directory", narTokens("nix-archive-1", "(", "type", "directory", ")"), ""},
		{"name with slash", narDir([2]string{"a/b", "x"}), "'/'"},
		{"name with NUL", narDir([2]string{"a\x00b", "x"}), "NUL"},
		{"name ..", narDir([2]string{"a", "x"}, [2]string{"..", "y"}), `".."`},
		{"name .. first", narDir([2]string{"..", "y"}), `".."`},
		{"name .", narDir([2]string{".", "y"}), `"."`},
		{"empty name", narDir([2]string{"", "y"}), "empty"},
		{"duplicate name", narDir([2]string{"a", "x"}, [2]string{"a", "y"}), "duplicate"},
		{"unsorted names", narDir([2]string{"b", "x"}, [2]string{"a", "y"}), "order"},
		{"truncated in contents", good[:len(good)-60], "truncated"},
		{"truncated at token boundary", good[:len(good)-8*2], "truncated"},
		{"truncated header", good[:10], "truncated"},
		{"empty input", nil, "truncated"},
		{"trailing data", append(append([]byte(nil), file...), 0), "trailing"},
		{"not a NAR", []byte("hello, world, this is not a NAR at all"), "not a NAR"},
		{"bad type", narTokens("nix-archive-1", "(", "type", "fifo", ")"), "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNAR(bytes.NewReader(tc.nar))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("CheckNAR = %v, want nil", err)
				}
				return
			}
			var ne *NARError
			if !errors.Is(err, ErrBadNAR) || !errors.As(err, &ne) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("CheckNAR = %v, want a *NARError mentioning %q", err, tc.reason)
			}
		})
	}
}

const (
	spA = "/nix/store/vwqkxrhkg2k7y7rifwb3nv5bv3lyspsf-app"
	spB = "/nix/store/zi8h56j0sij13q042nl4wqfffpw8xhzd-lib"
)

func TestParsePathInfoJSON(t *testing.T) {
	const (
		sri = "sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA="
		b32 = "sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv"
	)
	tests := []struct {
		name  string
		json  string
		paths int
		is    error
	}{
		{"list form (Nix 2.8)", `[{"path":"` + spA + `","narHash":"` + sri + `","narSize":328,"references":["` + spB + `"],"deriver":"/nix/store/ssxaabn2ixll970w58z7ss14m711rb5f-app.drv","registrationTime":1,"ultimate":true},
			{"path":"` + spB + `","narHash":"` + b32 + `","narSize":1240,"references":[],"signatures":["c:AAAA"]}]`, 2, nil},
		{"object form (newer Nix)", `{"` + spA + `":{"narHash":"` + sri + `","narSize":328,"references":["` + spB + `"],"deriver":null,"ca":null},"` + spB + `":{"narHash":"` + sri + `","narSize":1,"references":[]}}`, 2, nil},
		{"invalid path, list form", `[{"path":"` + spA + `","valid":false}]`, 0, ErrBadPathInfo},
		{"invalid path, object form", `{"` + spA + `":null}`, 0, ErrBadPathInfo},
		{"not JSON", `nope`, 0, ErrBadPathInfo},
		{"bad hash", `[{"path":"` + spA + `","narHash":"sha256:xyz","narSize":1,"references":[]}]`, 0, ErrBadPathInfo},
		{"md5 hash", `[{"path":"` + spA + `","narHash":"md5:d41d8cd98f00b204e9800998ecf8427e","narSize":1,"references":[]}]`, 0, ErrBadPathInfo},
		{"no size", `[{"path":"` + spA + `","narHash":"` + sri + `","references":[]}]`, 0, ErrBadPathInfo},
		{"path outside store", `[{"path":"/gnu/store/vwqkxrhkg2k7y7rifwb3nv5bv3lyspsf-app","narHash":"` + sri + `","narSize":1,"references":[]}]`, 0, ErrForeignStoreDir},
		{"reference outside store", `[{"path":"` + spA + `","narHash":"` + sri + `","narSize":1,"references":["/etc/passwd"]}]`, 0, ErrForeignStoreDir},
		{"listed twice", `[{"path":"` + spA + `","narHash":"` + sri + `","narSize":1},{"path":"` + spA + `","narHash":"` + sri + `","narSize":1}]`, 0, ErrBadPathInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			infos, err := ParsePathInfoJSON([]byte(tc.json), "")
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("err = %v, want %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != tc.paths || infos[0].Path != spA || infos[0].NarHashString() != b32 {
				t.Fatalf("infos = %+v", infos)
			}
		})
	}
	// Completeness of a parsed set.
	infos, _ := ParsePathInfoJSON([]byte(`[{"path":"`+spA+`","narHash":"`+sri+`","narSize":328,"references":["`+spB+`"]}]`), "")
	var me *MissingReferenceError
	if err := CheckComplete(infos); !errors.As(err, &me) || me.Path != spA || me.Reference != spB {
		t.Fatalf("CheckComplete = %v", err)
	}
}

func TestParseNarinfo(t *testing.T) {
	const good = "StorePath: " + spA + "\nURL: nar/1.nar.xz\nCompression: xz\nNarHash: sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv\nNarSize: 328\nReferences: zi8h56j0sij13q042nl4wqfffpw8xhzd-lib\nDeriver: ssxaabn2ixll970w58z7ss14m711rb5f-app.drv\n"
	tests := []struct {
		name string
		text string
		is   error
	}{
		{"good", good, nil},
		{"unknown key", good + "Bogus: 1\n", ErrBadPathInfo},
		{"no NarHash", strings.Replace(good, "NarHash: sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv\n", "", 1), ErrBadPathInfo},
		{"no URL", strings.Replace(good, "URL: nar/1.nar.xz\n", "", 1), ErrBadPathInfo},
		{"compression", strings.Replace(good, "Compression: xz", "Compression: lz4", 1), ErrBadPathInfo},
		{"reference with slash", strings.Replace(good, "References: ", "References: ../", 1), ErrForeignStoreDir},
		{"foreign store path", strings.Replace(good, "StorePath: /nix/store", "StorePath: /gnu/store", 1), ErrForeignStoreDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ni, err := ParseNarinfo(strings.NewReader(tc.text), "")
			if tc.is == nil {
				if err != nil || ni.StorePath != spA || len(ni.References) != 1 {
					t.Fatalf("ParseNarinfo = %+v, %v", ni, err)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	h, _ := ParseNarHash("sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=")
	narCid := rawLeafForTest(t)
	pi := PathInfo{Path: spA, NarHash: h, NarSize: 328, References: []string{spB}, Deriver: "/nix/store/ssxaabn2ixll970w58z7ss14m711rb5f-app.drv", CA: "fixed:r:sha256:x", Signatures: []string{"k:AAAA"}}
	blk, err := encodeRecord(newStorePathInfo(pi, narCid), storePathInfoType)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeRecord[StorePathInfo](blk.RawData(), storePathInfoType)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.PathInfo()
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != pi.Path || got.NarHashString() != pi.NarHashString() || got.Deriver != pi.Deriver || got.CA != pi.CA ||
		strings.Join(got.References, ",") != spB || !back.NARCid().Equals(narCid) {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := decodeRecord[Closure](blk.RawData(), closureType); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("StorePathInfo decoded as Closure: %v", err)
	}
}

// TestRecordsMatchSchemasBindings checks that closure's records are the
// schemas package's StorePathInfo and Closure: the bytes closure writes
// decode through schemas' Go bindings and re-encode to the same bytes.
func TestRecordsMatchSchemasBindings(t *testing.T) {
	h, _ := ParseNarHash("sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA=")
	narCid := rawLeafForTest(t)
	pi := PathInfo{Path: spA, NarHash: h, NarSize: 328, References: []string{spB}, Deriver: "/nix/store/ssxaabn2ixll970w58z7ss14m711rb5f-app.drv", Signatures: []string{"k:AAAA"}}
	spi, err := encodeRecord(newStorePathInfo(pi, narCid), storePathInfoType)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := encodeRecord(&Closure{Root: spA, StoreDir: "/nix/store", Paths: []ClosureEntry{{Path: spA, Info: cidlink.Link{Cid: spi.Cid()}}}}, closureType)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		blk blocks.Block
		rec schemas.Record
	}{
		{spi, &schemas.StorePathInfo{}},
		{cl, &schemas.Closure{}},
	} {
		if err := schemas.DecodeBlock(tc.blk, tc.rec); err != nil {
			t.Fatalf("%s: %v", tc.rec.RecordType(), err)
		}
		again, err := schemas.EncodeBlock(tc.rec)
		if err != nil || !again.Cid().Equals(tc.blk.Cid()) {
			t.Fatalf("%s: re-encoded as %v (%v), closure wrote %s", tc.rec.RecordType(), again, err, tc.blk.Cid())
		}
	}
}
