package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/store"
)

const (
	stV1 = "bafkreiefh74toyvanxn7oiwe5pu53vtnr5r53lvjp5jbypwmednhzf3aea"
	stV0 = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
)

func TestParseCID(t *testing.T) {
	cases := []struct {
		in   string
		want string // "" = error
	}{
		{stV1, stV1},
		{stV0, stV0},
		{"", ""},
		{" " + stV1, ""},
		{stV1 + "\n", ""},
		{"bafy", ""},
		{"not a cid", ""},
		{"/ipfs/" + stV1, ""},
		{strings.Repeat("b", 600), ""},
	}
	for _, tc := range cases {
		c, err := store.ParseCID(tc.in)
		if tc.want == "" {
			var pe *store.ParseError
			if err == nil || !errors.Is(err, store.ErrInvalidCID) || !errors.As(err, &pe) {
				t.Errorf("ParseCID(%q) = %v, %v; want a *ParseError matching ErrInvalidCID", tc.in, c, err)
			}
			continue
		}
		if err != nil || c.String() != tc.want {
			t.Errorf("ParseCID(%q) = %v, %v; want %s", tc.in, c, err, tc.want)
		}
	}
}

func TestParsePath(t *testing.T) {
	cases := []struct {
		in      string
		root    string // "" = error
		segs    []string
		badCID  bool // error also matches ErrInvalidCID
		mention string
	}{
		{in: stV1, root: stV1},
		{in: stV1 + "/", root: stV1},
		{in: stV1 + "/a/b.txt", root: stV1, segs: []string{"a", "b.txt"}},
		{in: "/ipfs/" + stV1, root: stV1},
		{in: "/ipfs/" + stV1 + "/", root: stV1},
		{in: "/ipfs/" + stV0 + "/dir/file", root: stV0, segs: []string{"dir", "file"}},
		{in: "ipfs://" + stV1, root: stV1},
		{in: "ipfs://" + stV1 + "/x", root: stV1, segs: []string{"x"}},
		{in: "", mention: "empty"},
		{in: "/ipfs/", badCID: true, mention: "root CID"},
		{in: "ipfs://", badCID: true},
		{in: "/ipns/example.org", mention: "want <cid>"},
		{in: "https://" + stV1, mention: "want <cid>"},
		{in: "/" + stV1, mention: "want <cid>"},
		{in: "/ipfs/notacid/a", badCID: true},
		{in: "/ipfs/" + stV1 + "//a", mention: "empty path segment"},
		{in: "/ipfs/" + stV1 + "/a/../b", mention: ".."},
		{in: "/ipfs/" + stV1 + "/./b", mention: "."},
		{in: "/ipfs/" + stV1 + "//", mention: "empty path segment"},
	}
	for _, tc := range cases {
		c, segs, err := store.ParsePath(tc.in)
		if tc.root == "" {
			if !errors.Is(err, store.ErrInvalidPath) || (tc.badCID && !errors.Is(err, store.ErrInvalidCID)) ||
				!strings.Contains(err.Error(), tc.mention) {
				t.Errorf("ParsePath(%q) = %v, %q, %v; want ErrInvalidPath (bad CID %v) mentioning %q", tc.in, c, segs, err, tc.badCID, tc.mention)
			}
			continue
		}
		if err != nil || c.String() != tc.root || !slices.Equal(segs, tc.segs) {
			t.Errorf("ParsePath(%q) = %v, %q, %v; want %s, %q", tc.in, c, segs, err, tc.root, tc.segs)
		}
	}
}

func FuzzParseCID(f *testing.F) {
	for _, s := range []string{stV1, stV0, "", "bafy", "z" + strings.Repeat("1", 40), "f01711220" + strings.Repeat("ab", 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := store.ParseCID(s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidCID) {
				t.Fatalf("error %v does not match ErrInvalidCID", err)
			}
			return
		}
		// A parsed CID re-parses from its canonical form to itself.
		c2, err := store.ParseCID(c.String())
		if err != nil || !c2.Equals(c) {
			t.Fatalf("ParseCID(%q) = %s, which re-parses as %v, %v", s, c, c2, err)
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{stV1, "/ipfs/" + stV1 + "/a/b", "ipfs://" + stV0 + "/x/", "/ipns/x", "", "/ipfs//", stV1 + "/../a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, segs, err := store.ParsePath(s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidPath) {
				t.Fatalf("error %v does not match ErrInvalidPath", err)
			}
			return
		}
		for _, seg := range segs {
			if seg == "" || seg == "." || seg == ".." || strings.Contains(seg, "/") {
				t.Fatalf("ParsePath(%q) returned segment %q", s, seg)
			}
		}
		// The canonical /ipfs/ form parses back to the same result.
		canon := "/ipfs/" + c.String()
		if len(segs) > 0 {
			canon += "/" + strings.Join(segs, "/")
		}
		c2, segs2, err := store.ParsePath(canon)
		if err != nil || !c2.Equals(c) || !slices.Equal(segs, segs2) {
			t.Fatalf("ParsePath(%q) = %s %q; canonical %q parses as %v %q %v", s, c, segs, canon, c2, segs2, err)
		}
	})
}
