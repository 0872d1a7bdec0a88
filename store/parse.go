package store

import (
	"strings"

	"github.com/ipfs/go-cid"
)

// maxCIDText bounds the length of a CID string accepted from outside; real
// CIDs (sha2-512 in base2 excepted) are far shorter.
const maxCIDText = 512

// ParseCID parses a CID in any multibase (CIDv1) or base58btc (CIDv0) text
// form, with no surrounding space. It returns a *ParseError matching
// ErrInvalidCID for anything else, including the empty string.
func ParseCID(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, &ParseError{Input: s, Kind: ErrInvalidCID, Reason: "empty"}
	}
	if len(s) > maxCIDText {
		return cid.Undef, &ParseError{Input: s, Kind: ErrInvalidCID, Reason: "too long"}
	}
	if strings.TrimSpace(s) != s {
		return cid.Undef, &ParseError{Input: s, Kind: ErrInvalidCID, Reason: "surrounding white space"}
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, &ParseError{Input: s, Kind: ErrInvalidCID, Reason: "not a CID", Err: err}
	}
	return c, nil
}

// ParsePath parses an IPFS content path and returns its root CID and the
// path segments under it. Accepted forms:
//
//	<cid>
//	<cid>/a/b
//	/ipfs/<cid>
//	/ipfs/<cid>/a/b
//	ipfs://<cid>
//	ipfs://<cid>/a/b
//
// A single trailing slash is allowed. Segments are taken literally (no
// percent-decoding); empty segments ("a//b"), "." and ".." are rejected,
// as are other namespaces (/ipns/...). Errors are *ParseError values
// matching ErrInvalidPath; a bad CID also matches ErrInvalidCID.
func ParsePath(s string) (cid.Cid, []string, error) {
	bad := func(reason string, err error) (cid.Cid, []string, error) {
		return cid.Undef, nil, &ParseError{Input: s, Kind: ErrInvalidPath, Reason: reason, Err: err}
	}
	if s == "" {
		return bad("empty", nil)
	}
	rest := s
	switch {
	case strings.HasPrefix(rest, "ipfs://"):
		rest = rest[len("ipfs://"):]
	case strings.HasPrefix(rest, "/ipfs/"):
		rest = rest[len("/ipfs/"):]
	case strings.HasPrefix(rest, "/"), strings.Contains(strings.SplitN(rest, "/", 2)[0], ":"):
		return bad("want <cid>, /ipfs/<cid> or ipfs://<cid>", nil)
	}
	rest = strings.TrimSuffix(rest, "/")
	parts := strings.Split(rest, "/")
	c, err := ParseCID(parts[0])
	if err != nil {
		return bad("bad root CID", err)
	}
	var segs []string
	for _, p := range parts[1:] {
		switch p {
		case "":
			return bad("empty path segment", nil)
		case ".", "..":
			return bad("path segment "+p+" is not allowed", nil)
		}
		segs = append(segs, p)
	}
	return c, segs, nil
}
