package chain

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

// Git file modes as patches carry them.
const (
	modeFile    = 0o100644
	modeExec    = 0o100755
	modeSymlink = 0o120000
	modeTypeMsk = 0o170000
)

// entry is one path's state while a patch is applied in memory.
type entry struct {
	exists bool
	mode   os.FileMode // git mode: modeFile, modeExec or modeSymlink
	data   []byte      // file content, or symlink target
}

// applier applies the files of one patch to an in-memory overlay of the
// tree; nothing touches the tree until commit.
type applier struct {
	root    *os.Root
	overlay map[string]entry
}

// ApplyPatch applies a unified git diff to the tree under root, as
// `git apply` (without --index, -p1) would: new, deleted, renamed and copied
// files, mode changes, binary patches, hunks found at an offset from their
// stated line (searched as git searches: the stated line, then one after,
// one before, …; a hunk starting at line 1 must match at the start and a
// hunk without trailing context must match at the end), no fuzz and no
// whitespace fixes. A traditional (non-git) diff has one leading path
// component stripped, as -p1 does.
//
// Every read and write goes through root: a path that is absolute, has an
// empty, "." or ".." component, lies under .git, or lies beyond a symbolic
// link is rejected (ErrUnsafePath), so a symlink in the tree is never
// followed. The patch is applied all-or-nothing: every file is first
// patched in memory, then the results are moved into place and, should a
// move fail, the moves done are undone, so on any error the tree is
// unchanged. As git does, a directory emptied by a deletion is removed.
//
// A patch that cannot be applied returns a *PatchError naming the file;
// it matches ErrPatchDoesNotApply.
func ApplyPatch(root *os.Root, patch []byte) error {
	files, err := parsePatch(patch)
	if err != nil {
		return err
	}
	a := &applier{root: root, overlay: map[string]entry{}}
	for _, f := range files {
		if err := a.file(f); err != nil {
			return err
		}
	}
	return a.commit()
}

// parsePatch parses patch with go-gitdiff and normalises its file names.
func parsePatch(patch []byte) ([]*gitdiff.File, error) {
	files, _, err := gitdiff.Parse(bytes.NewReader(patch))
	if err != nil {
		return nil, &PatchError{Err: fmt.Errorf("%w: %v", ErrMalformedPatch, err)}
	}
	if len(files) == 0 {
		return nil, &PatchError{Err: fmt.Errorf("%w: no file in patch", ErrMalformedPatch)}
	}
	gitHeaders := countGitHeaders(patch)
	switch gitHeaders {
	case len(files):
		// go-gitdiff strips a/ and b/ from git headers itself.
	case 0:
		// traditional diff: strip one component (-p1), as git apply does.
		for _, f := range files {
			for _, n := range []*string{&f.OldName, &f.NewName} {
				if *n == "" {
					continue
				}
				_, rest, ok := strings.Cut(*n, "/")
				if !ok || rest == "" {
					return nil, &PatchError{File: *n, Err: fmt.Errorf("%w: cannot strip a leading component (-p1) from %q", ErrMalformedPatch, *n)}
				}
				*n = rest
			}
		}
	default:
		return nil, &PatchError{Err: fmt.Errorf("%w: %d of %d files have a git header (mixed git and traditional diffs)", ErrMalformedPatch, gitHeaders, len(files))}
	}
	for _, f := range files {
		for _, n := range []string{f.OldName, f.NewName} {
			if n == "" {
				continue
			}
			if err := checkName(n); err != nil {
				return nil, &PatchError{File: n, Err: err}
			}
		}
	}
	return files, nil
}

// countGitHeaders counts the lines of patch that start a git file header.
func countGitHeaders(patch []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(patch))
	sc.Buffer(make([]byte, 64*1024), len(patch)+1)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "diff --git ") {
			n++
		}
	}
	return n
}

// checkName rejects a patch path that could leave the tree or reach .git.
func checkName(name string) error {
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: absolute path %q", ErrUnsafePath, name)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: NUL in path %q", ErrUnsafePath, name)
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "" || c == "." || c == "..":
			return fmt.Errorf("%w: component %q in path %q", ErrUnsafePath, c, name)
		case strings.EqualFold(c, ".git"):
			return fmt.Errorf("%w: path %q is under .git", ErrUnsafePath, name)
		}
	}
	return nil
}

// noSymlinkParents rejects name when one of its parent directories is a
// symbolic link in the tree (git: "beyond a symbolic link"), or is not a
// directory. It returns whether every parent exists.
func (a *applier) noSymlinkParents(name string) (bool, error) {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		if e, ok := a.overlay[p]; ok {
			if e.exists {
				return false, fmt.Errorf("%q is not a directory", p)
			}
			return false, nil // deleted earlier in this patch: will be created
		}
		fi, err := a.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading %q: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return false, fmt.Errorf("%w: %q is beyond a symbolic link (%q)", ErrUnsafePath, name, p)
		}
		if !fi.IsDir() {
			return false, fmt.Errorf("%q is not a directory", p)
		}
	}
	return true, nil
}

// get returns name's current state: from the overlay, else from the tree.
func (a *applier) get(name string) (entry, error) {
	if e, ok := a.overlay[name]; ok {
		return e, nil
	}
	all, err := a.noSymlinkParents(name)
	if err != nil || !all {
		return entry{}, err
	}
	fi, err := a.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, fmt.Errorf("reading %q: %w", name, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := a.root.Readlink(name)
		if err != nil {
			return entry{}, fmt.Errorf("reading %q: %w", name, err)
		}
		return entry{exists: true, mode: modeSymlink, data: []byte(t)}, nil
	case fi.Mode().IsRegular():
		b, err := a.root.ReadFile(name)
		if err != nil {
			return entry{}, fmt.Errorf("reading %q: %w", name, err)
		}
		m := os.FileMode(modeFile)
		if fi.Mode().Perm()&0o100 != 0 {
			m = modeExec
		}
		return entry{exists: true, mode: m, data: b}, nil
	default:
		return entry{}, fmt.Errorf("%q is a %v, not a file", name, fi.Mode().Type())
	}
}

// file applies one file of the patch to the overlay.
func (a *applier) file(f *gitdiff.File) error {
	name := f.NewName
	if name == "" || f.IsDelete {
		name = f.OldName
	}
	fail := func(err error) error { return &PatchError{File: name, Err: err} }
	for _, m := range []os.FileMode{f.OldMode, f.NewMode} {
		if m != 0 && m != modeFile && m != modeExec && m != modeSymlink {
			return fail(fmt.Errorf("unsupported file mode %o", m))
		}
	}
	var src entry
	switch {
	case f.IsNew:
		e, err := a.get(f.NewName)
		if err != nil {
			return fail(err)
		}
		if e.exists {
			return fail(errors.New("already exists"))
		}
		src = entry{mode: modeFile}
		if f.OldName != "" && f.OldName != f.NewName {
			return fail(fmt.Errorf("%w: new file with an old name %q", ErrMalformedPatch, f.OldName))
		}
	default:
		from := f.OldName
		if from == "" {
			return fail(fmt.Errorf("%w: no old name", ErrMalformedPatch))
		}
		e, err := a.get(from)
		if err != nil {
			return fail(err)
		}
		if !e.exists {
			return fail(fmt.Errorf("%q does not exist", from))
		}
		if f.OldMode != 0 && f.OldMode&modeTypeMsk != e.mode&modeTypeMsk {
			return fail(fmt.Errorf("wrong type: %q has mode %o, the patch expects %o", from, e.mode, f.OldMode))
		}
		src = e
		if !f.IsDelete && f.NewName != from {
			if !f.IsRename && !f.IsCopy {
				return fail(fmt.Errorf("%w: names %q and %q differ but the patch is no rename or copy", ErrMalformedPatch, from, f.NewName))
			}
			t, err := a.get(f.NewName)
			if err != nil {
				return fail(err)
			}
			if t.exists {
				return fail(errors.New("already exists"))
			}
		}
	}

	data, err := applyData(src.data, f)
	if err != nil {
		return fail(err)
	}
	if f.IsDelete {
		if len(data) != 0 {
			return fail(errors.New("removal patch leaves file contents"))
		}
		a.overlay[f.OldName] = entry{}
		return nil
	}
	mode := src.mode
	if f.NewMode != 0 {
		mode = f.NewMode
	}
	if mode == modeSymlink && len(data) == 0 {
		return fail(errors.New("symbolic link with an empty target"))
	}
	if f.IsRename {
		a.overlay[f.OldName] = entry{}
	}
	a.overlay[f.NewName] = entry{exists: true, mode: mode, data: data}
	return nil
}

// applyData applies f's fragments to data.
func applyData(data []byte, f *gitdiff.File) ([]byte, error) {
	if f.IsBinary || f.BinaryFragment != nil {
		if f.BinaryFragment == nil {
			return nil, errors.New("binary patch without data (generated without --binary)")
		}
		var out bytes.Buffer
		if err := gitdiff.Apply(&out, bytes.NewReader(data), f); err != nil {
			return nil, fmt.Errorf("binary patch: %w", err)
		}
		return out.Bytes(), nil
	}
	for i, frag := range f.TextFragments {
		if err := frag.Validate(); err != nil {
			return nil, fmt.Errorf("%w: hunk #%d: %v", ErrMalformedPatch, i+1, err)
		}
		at, ok := findHunk(data, frag)
		if !ok {
			return nil, fmt.Errorf("hunk #%d (%s) does not match the file", i+1, strings.TrimSpace(frag.Header()))
		}
		g := *frag
		g.OldPosition = int64(at) + 1
		var out bytes.Buffer
		ta := gitdiff.NewTextApplier(&out, bytes.NewReader(data))
		if err := ta.ApplyFragment(&g); err != nil {
			return nil, fmt.Errorf("hunk #%d (%s): %w", i+1, strings.TrimSpace(frag.Header()), err)
		}
		if err := ta.Close(); err != nil {
			return nil, fmt.Errorf("hunk #%d: %w", i+1, err)
		}
		data = out.Bytes()
	}
	return data, nil
}

// findHunk finds the 0-based line of data where frag's old lines match,
// searching as git apply's find_pos does.
func findHunk(data []byte, frag *gitdiff.TextFragment) (int, bool) {
	var img []string
	for rest := data; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			img = append(img, string(rest))
			break
		}
		img = append(img, string(rest[:i+1]))
		rest = rest[i+1:]
	}
	var pre []string
	for _, l := range frag.Lines {
		if l.Old() {
			pre = append(pre, l.Line)
		}
	}
	if len(pre) > len(img) {
		return 0, false
	}
	matchBeginning := frag.OldPosition <= 1
	matchEnd := frag.TrailingContext == 0
	line := 0
	if frag.NewPosition > 0 {
		line = int(min(frag.NewPosition-1, int64(len(img))))
	}
	switch {
	case matchBeginning:
		line = 0
	case matchEnd:
		line = len(img) - len(pre)
	}
	match := func(at int) bool {
		if at < 0 || at+len(pre) > len(img) {
			return false
		}
		if (matchBeginning && at != 0) || (matchEnd && at+len(pre) != len(img)) {
			return false
		}
		for i, l := range pre {
			if img[at+i] != l {
				return false
			}
		}
		return true
	}
	// line, line+1, line-1, line+2, line-2, …
	for d := 0; line+d <= len(img) || line-d >= 0; d++ {
		if match(line + d) {
			return line + d, true
		}
		if d > 0 && match(line-d) {
			return line - d, true
		}
	}
	return 0, false
}

// commit moves the overlay into the tree, all-or-nothing.
func (a *applier) commit() (err error) {
	names := make([]string, 0, len(a.overlay))
	for n := range a.overlay {
		names = append(names, n)
	}
	sort.Strings(names)

	var undo []func() error
	var cleanup []string // temporary names to remove at the end
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				_ = undo[i]() // best effort: the tree is restored unless the disk fails twice
			}
		}
		for _, t := range cleanup {
			_ = a.root.RemoveAll(t)
		}
	}()
	tmpBase, err := tempBase()
	if err != nil {
		return err
	}
	tmpName := func(kind string, i int) string { return fmt.Sprintf("%s-%s-%d", tmpBase, kind, i) }

	// 1. write every new file under a temporary name at the top of the tree.
	staged := map[string]string{}
	for i, n := range names {
		e := a.overlay[n]
		if !e.exists {
			continue
		}
		t := tmpName("new", i)
		cleanup = append(cleanup, t)
		if err := a.writeTemp(t, e); err != nil {
			return fmt.Errorf("chain: writing %s: %w", n, err)
		}
		staged[n] = t
	}
	// 2. move every existing path the patch replaces or deletes aside.
	var deleted []string
	for i, n := range names {
		fi, lerr := a.root.Lstat(n)
		if errors.Is(lerr, fs.ErrNotExist) {
			continue
		}
		if lerr != nil {
			return fmt.Errorf("chain: reading %s: %w", n, lerr)
		}
		if fi.IsDir() {
			return &PatchError{File: n, Err: errors.New("is a directory")}
		}
		b := tmpName("old", i)
		if err := a.root.Rename(n, b); err != nil {
			return fmt.Errorf("chain: moving %s aside: %w", n, err)
		}
		cleanup = append(cleanup, b)
		undo = append(undo, func() error { return a.root.Rename(b, n) })
		if !a.overlay[n].exists {
			deleted = append(deleted, n)
		}
	}
	// 3. remove the directories the deletions emptied (as git does).
	for _, n := range deleted {
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			fi, err := a.root.Lstat(d)
			if err != nil || !fi.IsDir() {
				break
			}
			if err := a.root.Remove(d); err != nil {
				break // not empty
			}
			perm := fi.Mode().Perm()
			undo = append(undo, func() error { return a.root.Mkdir(d, perm) })
		}
	}
	// 4. move the new files into place, creating their directories.
	for _, n := range names {
		t, ok := staged[n]
		if !ok {
			continue
		}
		if err := a.mkdirs(path.Dir(n), &undo); err != nil {
			return &PatchError{File: n, Err: err}
		}
		if err := a.root.Rename(t, n); err != nil {
			return fmt.Errorf("chain: moving %s into place: %w", n, err)
		}
		undo = append(undo, func() error { return a.root.Rename(n, t) })
	}
	return nil
}

// writeTemp writes e under the temporary name t.
func (a *applier) writeTemp(t string, e entry) error {
	if e.mode == modeSymlink {
		return a.root.Symlink(string(e.data), t)
	}
	perm := os.FileMode(0o644)
	if e.mode == modeExec {
		perm = 0o755
	}
	f, err := a.root.OpenFile(t, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(e.data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil { // not subject to the umask
		f.Close()
		return err
	}
	return f.Close()
}

// mkdirs creates dir and its missing parents, never through a symlink,
// recording how to undo each.
func (a *applier) mkdirs(dir string, undo *[]func() error) error {
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := 1; i <= len(parts); i++ {
		d := strings.Join(parts[:i], "/")
		fi, err := a.root.Lstat(d)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %q is a symbolic link", ErrUnsafePath, d)
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%q is not a directory", d)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := a.root.Mkdir(d, 0o755); err != nil {
			return err
		}
		*undo = append(*undo, func() error { return a.root.Remove(d) })
	}
	return nil
}

// tempBase returns a fresh prefix for the temporary names of one commit.
func tempBase() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return ".chain-apply-" + hex.EncodeToString(b[:]), nil
}
