package closure

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/nix-community/go-nix/pkg/storepath"
)

// DefaultStoreDir is Nix's default store directory.
const DefaultStoreDir = storepath.StoreDir

// PathInfo is what Nix knows about one store path: the metadata of
// `nix path-info --json` or of a narinfo, without the NAR itself.
type PathInfo struct {
	// Path is the absolute store path.
	Path string `json:"path"`
	// NarHash is the SHA-256 of the path's NAR serialisation.
	NarHash *nixhash.Hash `json:"-"`
	// NarSize is the NAR's length in bytes.
	NarSize int64 `json:"narSize"`
	// References are absolute store paths, sorted; a path may reference
	// itself.
	References []string `json:"references"`
	// Deriver is the absolute path of the .drv, or "".
	Deriver string `json:"deriver,omitempty"`
	// CA is the content-address assertion, or "".
	CA string `json:"ca,omitempty"`
	// Signatures are "name:base64" narinfo signatures.
	Signatures []string `json:"signatures,omitempty"`
}

// NarHashString is NarHash as "sha256:<nixbase32>".
func (p PathInfo) NarHashString() string { return FormatHash(p.NarHash) }

// HashPart is the nixbase32 hash part of the store path's base name (the
// name of its narinfo without ".narinfo").
func (p PathInfo) HashPart() string { return hashPart(p.Path) }

func hashPart(path string) string {
	base := path[strings.LastIndexByte(path, '/')+1:]
	h, _, _ := strings.Cut(base, "-")
	return h
}

// checkStorePath checks that p is a syntactically valid store path directly
// in storeDir.
func checkStorePath(p, storeDir, referrer string) error {
	rest, ok := strings.CutPrefix(p, storeDir+"/")
	if !ok || strings.Contains(rest, "/") {
		return &StoreDirError{Path: p, Referrer: referrer, StoreDir: storeDir}
	}
	if _, err := storepath.FromString(rest); err != nil {
		return &StoreDirError{Path: p, Referrer: referrer, StoreDir: storeDir}
	}
	return nil
}

// ParseNarHash parses a NAR hash in any form Nix prints it: "sha256:<nixbase32>"
// (Nix 2.8 path-info, narinfo), "sha256:<hex>" or SRI "sha256-<base64>"
// (newer Nix). Only SHA-256 is accepted.
func ParseNarHash(s string) (*nixhash.Hash, error) {
	h, err := nixhash.ParseAny(s, nil)
	if err != nil {
		return nil, fmt.Errorf("bad NAR hash %q: %w", s, err)
	}
	if h.Algo() != nixhash.SHA256 {
		return nil, fmt.Errorf("bad NAR hash %q: algorithm %s, want sha256", s, h.Algo())
	}
	return &h.Hash, nil
}

// rawPathInfo is one element of path-info JSON, either form.
type rawPathInfo struct {
	Path       string   `json:"path"`
	Valid      *bool    `json:"valid"`
	NarHash    string   `json:"narHash"`
	NarSize    *int64   `json:"narSize"`
	References []string `json:"references"`
	Deriver    *string  `json:"deriver"`
	CA         *string  `json:"ca"`
	Signatures []string `json:"signatures"`
}

// ParsePathInfoJSON parses the output of `nix path-info --json [--recursive]`
// in either of its forms: the list of objects with a "path" key (Nix ≤ 2.18,
// including Debian's 2.8) or the object keyed by store path (newer Nix). NAR
// hashes may be nixbase32, hex or SRI. Every path and reference must be a
// store path in storeDir (DefaultStoreDir if ""). A path that Nix reports as
// invalid (not in its store) is an error. The result is sorted by path.
//
// The JSON is read strictly (encoding/json v2 semantics): member names match
// exactly, as Nix writes and reads them ("NarHash" is not narHash, and like
// any member Nix may add it is ignored), and a repeated member name (two
// narHash, or one store path listed twice in the object form), invalid
// UTF-8 or trailing data fail, naming the member.
func ParsePathInfoJSON(data []byte, storeDir string) ([]PathInfo, error) {
	if storeDir == "" {
		storeDir = DefaultStoreDir
	}
	bad := func(path, reason string, err error) error {
		return &PathInfoError{Source: "path-info JSON", Path: path, Reason: reason, Err: err}
	}
	data = bytes.TrimSpace(data)
	var raws []rawPathInfo
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := jsonv2.Unmarshal(data, &raws); err != nil {
			return nil, bad("", "not a JSON list of path infos", err)
		}
	case len(data) > 0 && data[0] == '{':
		var m map[string]*rawPathInfo
		if err := jsonv2.Unmarshal(data, &m); err != nil {
			return nil, bad("", "not a JSON object of path infos", err)
		}
		for p, r := range m {
			if r == nil {
				return nil, bad(p, "path is not valid in the Nix store", nil)
			}
			if r.Path != "" && r.Path != p {
				return nil, bad(p, fmt.Sprintf("entry names another path %q", r.Path), nil)
			}
			r.Path = p
			raws = append(raws, *r)
		}
	default:
		return nil, bad("", "want a JSON list or object", nil)
	}
	out := make([]PathInfo, 0, len(raws))
	seen := make(map[string]bool, len(raws))
	for _, r := range raws {
		if r.Path == "" {
			return nil, bad("", `entry without "path"`, nil)
		}
		if r.Valid != nil && !*r.Valid {
			return nil, bad(r.Path, "path is not valid in the Nix store", nil)
		}
		pi, err := newPathInfo(r, storeDir)
		if err != nil {
			return nil, bad(r.Path, "bad entry", err)
		}
		if seen[pi.Path] {
			return nil, bad(pi.Path, "listed twice", nil)
		}
		seen[pi.Path] = true
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func newPathInfo(r rawPathInfo, storeDir string) (PathInfo, error) {
	if err := checkStorePath(r.Path, storeDir, ""); err != nil {
		return PathInfo{}, err
	}
	if r.NarHash == "" {
		return PathInfo{}, fmt.Errorf("no narHash")
	}
	h, err := ParseNarHash(r.NarHash)
	if err != nil {
		return PathInfo{}, err
	}
	if r.NarSize == nil || *r.NarSize <= 0 {
		return PathInfo{}, fmt.Errorf("missing or non-positive narSize")
	}
	pi := PathInfo{Path: r.Path, NarHash: h, NarSize: *r.NarSize, Signatures: r.Signatures}
	refs, err := normRefs(r.References, storeDir, r.Path)
	if err != nil {
		return PathInfo{}, err
	}
	pi.References = refs
	if r.Deriver != nil && *r.Deriver != "" {
		if err := checkStorePath(*r.Deriver, storeDir, r.Path); err != nil {
			return PathInfo{}, fmt.Errorf("deriver: %w", err)
		}
		pi.Deriver = *r.Deriver
	}
	if r.CA != nil {
		pi.CA = *r.CA
	}
	return pi, nil
}

// normRefs checks references (absolute store paths) and returns them sorted
// and without duplicates.
func normRefs(refs []string, storeDir, referrer string) ([]string, error) {
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		if err := checkStorePath(ref, storeDir, referrer); err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	sort.Strings(out)
	j := 0
	for i, ref := range out {
		if i == 0 || ref != out[j-1] {
			out[j] = ref
			j++
		}
	}
	return out[:j], nil
}

// CheckComplete checks that infos is a closure: every reference of every
// path is itself in infos. The first missing reference (in path order) is
// reported as a *MissingReferenceError.
func CheckComplete(infos []PathInfo) error {
	have := make(map[string]bool, len(infos))
	for _, pi := range infos {
		have[pi.Path] = true
	}
	for _, pi := range infos {
		for _, ref := range pi.References {
			if !have[ref] {
				return &MissingReferenceError{Path: pi.Path, Reference: ref}
			}
		}
	}
	return nil
}
