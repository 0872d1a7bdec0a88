package chain

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// NarHash returns the SRI sha256 NAR hash ("sha256-<base64>") of the tree
// at dir, as `nix hash path` and a flake's locked.narHash compute it.
func NarHash(dir string) (string, error) {
	h := sha256.New()
	if err := DumpNAR(h, dir); err != nil {
		return "", err
	}
	return sriOf(h.Sum(nil)), nil
}

// SRI returns the SRI sha256 hash ("sha256-<base64>") of b, as Nix writes
// a NAR hash: the NarHash of a tree is SRI of its NAR.
func SRI(b []byte) string {
	s := sha256.Sum256(b)
	return sriOf(s[:])
}

func sriOf(digest []byte) string {
	nh, err := nixhash.NewHash(nixhash.SHA256, digest)
	if err != nil {
		panic(fmt.Sprintf("chain: a sha256 digest of %d bytes", len(digest))) // sha256 sums are 32 bytes
	}
	return nh.Format(nixhash.SRI, true)
}

// ParseSRI returns the digest of an SRI sha256 hash ("sha256-<base64>"),
// refusing any other form or algorithm.
func ParseSRI(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "sha256-") {
		return nil, fmt.Errorf("%q is not an SRI sha256 hash", s)
	}
	nh, err := nixhash.ParseAny(s, nil)
	if err != nil || nh.Algo() != nixhash.SHA256 {
		return nil, fmt.Errorf("%q is not an SRI sha256 hash", s)
	}
	return nh.Digest(), nil
}

// DumpNAR writes the NAR serialisation of dir to w, as `nix-store --dump`
// does: entries sorted by name, a regular file executable when its owner
// may execute it, symbolic links serialised as links (never followed).
func DumpNAR(w io.Writer, dir string) error {
	if err := nar.DumpPath(w, dir); err != nil {
		return fmt.Errorf("chain: NAR of %s: %w", dir, err)
	}
	return nil
}

// UnpackNAR unpacks a NAR stream into dir, which must be absent or an
// empty directory. Every entry is created through an os.Root of dir's
// parent, and only as a new child of a directory this NAR created: an entry
// named "", "." or "..", a duplicate, or one out of order is refused
// (ErrUnsafeNAR), as is a symlink being used as a directory. A NAR whose
// root is a file or a symlink is unpacked as that file or symlink at dir.
// A NAR that is not canonical (one that does not re-serialise to the same
// bytes, e.g. with non-zero padding) is refused, so the unpacked tree's
// NarHash is the hash of the bytes read.
// On error, dir may hold part of the NAR; the caller removes it.
func UnpackNAR(r io.Reader, dir string) error {
	dir = filepath.Clean(dir)
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if base == "." || base == ".." || base == string(filepath.Separator) {
		return fmt.Errorf("chain: cannot unpack a NAR into %q", dir)
	}
	if ents, err := os.ReadDir(dir); err == nil {
		if len(ents) != 0 {
			return fmt.Errorf("chain: unpacking a NAR into %s: directory is not empty", dir)
		}
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("chain: unpacking a NAR into %s: %w", dir, err)
		}
	} else if _, lerr := os.Lstat(dir); !errors.Is(lerr, fs.ErrNotExist) {
		return fmt.Errorf("chain: unpacking a NAR into %s: not an empty directory: %v", dir, err)
	}
	root, err := os.OpenRoot(parent)
	if err != nil {
		return fmt.Errorf("chain: unpacking a NAR into %s: %w", dir, err)
	}
	defer root.Close()

	// go-nix's parser reports a NAR cut short at an entry boundary as
	// io.EOF, its own "archive done": make the end of r unexpected.
	// consumed hashes the bytes the parser reads, to check at the end that
	// the NAR was canonical (go-nix accepts e.g. non-zero padding).
	consumed := sha256.New()
	nr, err := nar.NewReader(noEOF{io.TeeReader(r, consumed)})
	if err != nil {
		return fmt.Errorf("chain: reading NAR: %w", err)
	}
	defer nr.Close()
	dirs := map[string]bool{} // NAR paths of the directories created so far
	seen := map[string]bool{}
	for first := true; ; first = false {
		hdr, err := nr.Next()
		if errors.Is(err, io.EOF) {
			if first {
				return fmt.Errorf("chain: reading NAR: empty archive")
			}
			back := sha256.New()
			if err := DumpNAR(back, dir); err != nil {
				return err
			}
			if !bytes.Equal(back.Sum(nil), consumed.Sum(nil)) {
				return fmt.Errorf("%w: the NAR is not in canonical form (it does not re-serialise to the same bytes)", ErrUnsafeNAR)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("chain: reading NAR: %w", err)
		}
		if err := hdr.Validate(); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrUnsafeNAR, hdr.Path, err)
		}
		p := hdr.Path
		if seen[p] {
			return fmt.Errorf("%w: %q appears twice", ErrUnsafeNAR, p)
		}
		seen[p] = true
		var name string
		switch {
		case first && p == "/":
			name = base
		case first:
			return fmt.Errorf("%w: first entry is %q, not the root", ErrUnsafeNAR, p)
		default:
			pd, leaf := path.Split(p)
			pd = path.Clean(pd)
			if p != path.Clean(p) || leaf == "" || leaf == "." || leaf == ".." || !dirs[pd] {
				return fmt.Errorf("%w: %q is not a child of an unpacked directory", ErrUnsafeNAR, p)
			}
			name = base + p
		}
		switch hdr.Type {
		case nar.TypeDirectory:
			if err := root.Mkdir(name, 0o755); err != nil {
				return fmt.Errorf("%w: %q: %v", ErrUnsafeNAR, p, err)
			}
			dirs[p] = true
		case nar.TypeSymlink:
			if err := root.Symlink(hdr.LinkTarget, name); err != nil {
				return fmt.Errorf("%w: %q: %v", ErrUnsafeNAR, p, err)
			}
		case nar.TypeRegular:
			perm := os.FileMode(0o644)
			if hdr.Executable {
				perm = 0o755
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
			if err != nil {
				return fmt.Errorf("%w: %q: %v", ErrUnsafeNAR, p, err)
			}
			n, err := io.Copy(f, nr)
			if err == nil && n != hdr.Size {
				err = fmt.Errorf("%d bytes, want %d", n, hdr.Size)
			}
			if err == nil {
				err = f.Chmod(perm)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("chain: unpacking %q: %w", p, err)
			}
		default:
			return fmt.Errorf("%w: %q has type %q", ErrUnsafeNAR, p, hdr.Type)
		}
	}
}

// noEOF turns r's io.EOF into io.ErrUnexpectedEOF: a complete NAR never
// reads past its end.
type noEOF struct{ r io.Reader }

func (n noEOF) Read(b []byte) (int, error) {
	k, err := n.r.Read(b)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// DiffTrees returns the relative paths (slash-separated, sorted) whose
// content, type or executable bit differ between the trees a and b,
// including paths present in only one of them. Symbolic links are compared
// by target and never followed. A directory present in only one tree is
// listed together with everything under it.
func DiffTrees(a, b string) ([]string, error) {
	ta, err := listTree(a)
	if err != nil {
		return nil, err
	}
	tb, err := listTree(b)
	if err != nil {
		return nil, err
	}
	var diff []string
	for p, ea := range ta {
		eb, ok := tb[p]
		if !ok || ea.kind != eb.kind || ea.exec != eb.exec || ea.target != eb.target {
			diff = append(diff, p)
			continue
		}
		if ea.kind == "file" {
			same, err := sameContent(filepath.Join(a, filepath.FromSlash(p)), filepath.Join(b, filepath.FromSlash(p)))
			if err != nil {
				return nil, err
			}
			if !same {
				diff = append(diff, p)
			}
		}
	}
	for p := range tb {
		if _, ok := ta[p]; !ok {
			diff = append(diff, p)
		}
	}
	sort.Strings(diff)
	return diff, nil
}

type treeEntry struct {
	kind   string // "file", "dir", "symlink"
	exec   bool
	target string
}

// listTree lists the tree at dir without following symlinks; the root
// itself is not listed.
func listTree(dir string) (map[string]treeEntry, error) {
	out := map[string]treeEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = treeEntry{kind: "symlink", target: t}
		case fi.IsDir():
			out[rel] = treeEntry{kind: "dir"}
		case fi.Mode().IsRegular():
			out[rel] = treeEntry{kind: "file", exec: fi.Mode().Perm()&0o100 != 0}
		default:
			return fmt.Errorf("chain: %s is a %v", p, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chain: listing %s: %w", dir, err)
	}
	return out, nil
}

func sameContent(a, b string) (bool, error) {
	ba, err := os.ReadFile(a)
	if err != nil {
		return false, fmt.Errorf("chain: %w", err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		return false, fmt.Errorf("chain: %w", err)
	}
	return bytes.Equal(ba, bb), nil
}

func joinArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '\"\n") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
