package schemas

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func rawCID(t testing.TB, s string) cid.Cid {
	sum := sha256.Sum256([]byte(s))
	m, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, m)
}

func sampleRecords(t testing.TB) []Record {
	sum := sha256.Sum256([]byte("patch"))
	prev := rawCID(t, "prev")
	deriver := "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello.drv"
	return []Record{
		&Patch{Bytes: rawCID(t, "patch"), Sha256: sum[:], Size: 5, Files: []string{"modules/foo.nix"}, Workspace: "/home/operator/nixos-config", ProposalPath: ".agentix/proposals/x.patch"},
		&AuditLogSnapshot{Workspace: "/w", Bytes: rawCID(t, "log"), Size: 100, Lines: 7, Root: sum[:]},
		&AuditLogSnapshot{Workspace: "/w", Bytes: rawCID(t, "log2"), Size: 200, Lines: 9, Root: sum[:], Previous: &prev},
		&StorePathInfo{StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello", NarHash: "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", NarSize: 1024,
			References: []string{}, Deriver: &deriver, Signatures: []string{"cache:abc="}, Nar: rawCID(t, "nar")},
		&ClosureEntry{Path: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello", Info: rawCID(t, "spi")},
		&Closure{Root: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello", StoreDir: "/nix/store",
			Paths: []ClosureEntry{{Path: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello", Info: rawCID(t, "spi")}}},
	}
}

// TestRecordsRoundTrip encodes every record type through its schema type
// and decodes it back; the Go bindings and records.ipldsch must agree.
func TestRecordsRoundTrip(t *testing.T) {
	for _, r := range sampleRecords(t) {
		t.Run(r.RecordType(), func(t *testing.T) {
			if _, err := Prototype(r); err != nil {
				t.Fatal(err)
			}
			blk, err := EncodeBlock(r)
			if err != nil {
				t.Fatal(err)
			}
			if p := blk.Cid().Prefix(); p.Version != 1 || p.Codec != cid.DagCBOR || p.MhType != mh.SHA2_256 {
				t.Fatalf("CID prefix %+v", p)
			}
			again, _ := Encode(r)
			if !bytes.Equal(again, blk.RawData()) {
				t.Fatal("encoding is not deterministic")
			}
			out := reflect.New(reflect.TypeOf(r).Elem()).Interface().(Record)
			if err := DecodeBlock(blk, out); err != nil {
				t.Fatal(err)
			}
			// Compare by re-encoding (an empty list may decode as nil).
			if b2, err := Encode(out); err != nil || !bytes.Equal(b2, blk.RawData()) {
				t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", out, r, err)
			}
			if r.RecordType() == "Patch" && out.(*Patch).Workspace != "/home/operator/nixos-config" {
				t.Fatalf("decoded patch %+v", out)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	patch, _ := Encode(sampleRecords(t)[0])
	for name, tc := range map[string]struct {
		data []byte
		into Record
	}{
		"patch as closure":  {patch, &Closure{}},
		"truncated":         {patch[:len(patch)-3], &Patch{}},
		"not cbor":          {[]byte("{}"), &Patch{}},
		"empty":             {nil, &StorePathInfo{}},
		"cbor int as patch": {[]byte{0x01}, &Patch{}},
	} {
		if err := Decode(tc.data, tc.into); !errors.Is(err, ErrRecord) {
			t.Errorf("%s: err = %v, want ErrRecord", name, err)
		}
	}
}

// TestSchemaNamesEveryRecord checks that every schema type has a Go binding
// (so a type added to records.ipldsch cannot go unbound).
func TestSchemaNamesEveryRecord(t *testing.T) {
	ts, err := TypeSystem()
	if err != nil {
		t.Fatal(err)
	}
	bound := map[string]bool{}
	for _, r := range sampleRecords(t) {
		bound[r.RecordType()] = true
	}
	for _, name := range ts.Names() {
		typ := ts.TypeByName(string(name))
		if typ.TypeKind().String() == "Struct" && !bound[string(name)] {
			t.Errorf("schema type %s has no Go binding", name)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords(f) {
		b, _ := Encode(r)
		f.Add(b, uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		rs := []Record{&Patch{}, &AuditLogSnapshot{}, &StorePathInfo{}, &ClosureEntry{}, &Closure{}}
		r := rs[int(which)%len(rs)]
		if err := Decode(data, r); err != nil {
			return
		}
		// Whatever decodes re-encodes, and decodes to the same value.
		b, err := Encode(r)
		if err != nil {
			t.Fatalf("decoded %s does not re-encode: %v", r.RecordType(), err)
		}
		r2 := reflect.New(reflect.TypeOf(r).Elem()).Interface().(Record)
		if err := Decode(b, r2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if b2, _ := Encode(r2); !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs")
		}
	})
}
