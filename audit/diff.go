package audit

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// FileChange is one file touched by a patch, from its diff headers.
type FileChange struct {
	// OldPath and NewPath are the paths with the a/ and b/ prefixes
	// removed; "" stands for /dev/null (a created or deleted file).
	OldPath string `json:"oldPath,omitempty"`
	NewPath string `json:"newPath,omitempty"`
	// Op is "create", "delete", "rename", "copy" or "modify".
	Op string `json:"op"`
}

// Path is the path the change is about: NewPath, or OldPath for a deletion.
func (c FileChange) Path() string {
	if c.NewPath != "" {
		return c.NewPath
	}
	return c.OldPath
}

// MaxPatchSize bounds a patch accepted by ParseDiff (64 MiB).
const MaxPatchSize = 64 << 20

// ParseDiff reads the file headers of a unified diff, in git format
// ("diff --git", extended headers, "---"/"+++") or plain unified format
// ("---"/"+++" only, as Agentix's controller writes), and returns the files
// it touches in order of appearance.
//
// Hunks are skipped by their line counts, so lines inside a hunk that look
// like headers (a patch that adds a patch file, say) are never taken for
// headers. Quoted paths (git's C-style quoting) are unquoted. Anything that
// is neither a header nor inside a hunk (blank lines between files, "\ No
// newline at end of file", git's "index" line, commit messages) is ignored.
// A patch without a single file header fails with ErrNotDiff; a malformed
// hunk header, a hunk shorter than its counts or a "---" without "+++"
// fails with ErrBadDiff.
func ParseDiff(patch []byte) ([]FileChange, error) {
	if len(patch) > MaxPatchSize {
		return nil, &DiffError{Kind: ErrBadDiff, Msg: fmt.Sprintf("%d bytes, limit %d", len(patch), MaxPatchSize)}
	}
	p := &diffParser{lines: splitLines(patch)}
	if err := p.run(); err != nil {
		return nil, err
	}
	if len(p.out) == 0 {
		return nil, &DiffError{Kind: ErrNotDiff, Msg: "no file header found"}
	}
	return p.out, nil
}

// FilesTouched returns the sorted, distinct paths of changes (old and new
// path of a rename both count).
func FilesTouched(changes []FileChange) []string {
	set := map[string]struct{}{}
	for _, c := range changes {
		if c.OldPath != "" {
			set[c.OldPath] = struct{}{}
		}
		if c.NewPath != "" {
			set[c.NewPath] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func splitLines(b []byte) [][]byte {
	ls := bytes.Split(b, []byte("\n"))
	if len(ls) > 0 && len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	for i, l := range ls {
		ls[i] = bytes.TrimSuffix(l, []byte("\r"))
	}
	return ls
}

type diffParser struct {
	lines [][]byte
	i     int
	out   []FileChange
	// git is the change opened by the last "diff --git" line and not yet
	// completed by its ---/+++ pair (binary and mode-only diffs have none).
	git *FileChange
}

func (p *diffParser) errf(format string, a ...any) error {
	return &DiffError{Line: p.i + 1, Kind: ErrBadDiff, Msg: fmt.Sprintf(format, a...)}
}

func (p *diffParser) flushGit() {
	if p.git != nil {
		p.out = append(p.out, *p.git)
		p.git = nil
	}
}

func (p *diffParser) run() error {
	for p.i < len(p.lines) {
		l := string(p.lines[p.i])
		switch {
		case strings.HasPrefix(l, "diff --git "):
			p.flushGit()
			a, b, err := splitGitHeader(l[len("diff --git "):])
			if err == nil && (a == "" || b == "") {
				err = fmt.Errorf("diff --git header %q has an empty path", l)
			}
			if err != nil {
				return p.errf("%v", err)
			}
			p.git = &FileChange{OldPath: a, NewPath: b, Op: "modify"}
			if a != b {
				p.git.Op = "rename"
			}
			p.i++
		case p.git != nil && strings.HasPrefix(l, "new file mode"):
			p.git.Op, p.git.OldPath = "create", ""
			p.i++
		case p.git != nil && strings.HasPrefix(l, "deleted file mode"):
			p.git.Op, p.git.NewPath = "delete", ""
			p.i++
		case p.git != nil && strings.HasPrefix(l, "rename from "):
			p.git.Op = "rename"
			p.i++
		case p.git != nil && strings.HasPrefix(l, "copy from "):
			p.git.Op = "copy"
			p.i++
		case strings.HasPrefix(l, "--- "):
			if p.i+1 >= len(p.lines) || !bytes.HasPrefix(p.lines[p.i+1], []byte("+++ ")) {
				// A "--- " line not followed by "+++ " is not a header
				// (for example a commit message separator).
				p.i++
				continue
			}
			oldP, err := headerPath(l[4:])
			if err != nil {
				return p.errf("--- header: %v", err)
			}
			p.i++
			newP, err := headerPath(string(p.lines[p.i])[4:])
			if err != nil {
				return p.errf("+++ header: %v", err)
			}
			p.i++
			c := FileChange{OldPath: oldP, NewPath: newP, Op: "modify"}
			switch {
			case oldP == "" && newP == "":
				return p.errf("both sides are /dev/null")
			case oldP == "":
				c.Op = "create"
			case newP == "":
				c.Op = "delete"
			case oldP != newP:
				c.Op = "rename"
			}
			if p.git != nil && p.git.Op == "copy" {
				c.Op = "copy"
			}
			p.git = nil
			p.out = append(p.out, c)
			if err := p.hunks(); err != nil {
				return err
			}
		default:
			p.i++
		}
	}
	p.flushGit()
	return nil
}

// hunks consumes the hunks following a ---/+++ pair.
func (p *diffParser) hunks() error {
	for p.i < len(p.lines) && bytes.HasPrefix(p.lines[p.i], []byte("@@ ")) {
		oldN, newN, err := parseHunkHeader(string(p.lines[p.i]))
		if err != nil {
			return p.errf("%v", err)
		}
		p.i++
		for oldN > 0 || newN > 0 {
			if p.i >= len(p.lines) {
				return p.errf("hunk ends early: %d old and %d new lines missing", oldN, newN)
			}
			l := p.lines[p.i]
			c := byte(' ')
			if len(l) > 0 {
				c = l[0]
			}
			switch c {
			case ' ':
				oldN--
				newN--
			case '-':
				oldN--
			case '+':
				newN--
			case '\\':
			default:
				return p.errf("hunk ends early: %d old and %d new lines missing", oldN, newN)
			}
			if oldN < 0 || newN < 0 {
				return p.errf("hunk has more lines than its header counts")
			}
			p.i++
		}
		for p.i < len(p.lines) && bytes.HasPrefix(p.lines[p.i], []byte(`\`)) {
			p.i++
		}
	}
	return nil
}

// parseHunkHeader parses "@@ -a[,b] +c[,d] @@..." and returns b and d.
func parseHunkHeader(l string) (int, int, error) {
	rest := strings.TrimPrefix(l, "@@ ")
	end := strings.Index(rest, " @@")
	if end < 0 {
		return 0, 0, fmt.Errorf("hunk header %q lacks closing @@", l)
	}
	f := strings.Fields(rest[:end])
	if len(f) != 2 || !strings.HasPrefix(f[0], "-") || !strings.HasPrefix(f[1], "+") {
		return 0, 0, fmt.Errorf("hunk header %q is not -a,b +c,d", l)
	}
	o, err1 := hunkCount(f[0][1:])
	n, err2 := hunkCount(f[1][1:])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("hunk header %q has bad numbers", l)
	}
	return o, n, nil
}

func hunkCount(s string) (int, error) {
	start, count, ok := strings.Cut(s, ",")
	if _, err := strconv.ParseUint(start, 10, 32); err != nil {
		return 0, err
	}
	if !ok {
		return 1, nil
	}
	n, err := strconv.ParseUint(count, 10, 24)
	return int(n), err
}

// headerPath turns the path part of a ---/+++ line into a repository path:
// /dev/null becomes "", a quoted path is unquoted, a trailing tab and
// timestamp are dropped, and the a/ or b/ prefix is removed.
func headerPath(s string) (string, error) {
	var p string
	if strings.HasPrefix(s, `"`) {
		q, _, err := unquotePrefix(s)
		if err != nil {
			return "", err
		}
		p = q
	} else {
		p, _, _ = strings.Cut(s, "\t")
		p = strings.TrimRight(p, " ")
	}
	if p == "/dev/null" {
		return "", nil
	}
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	return stripPrefix(p), nil
}

func stripPrefix(p string) string {
	if len(p) > 2 && (p[:2] == "a/" || p[:2] == "b/") {
		return p[2:]
	}
	return p
}

// splitGitHeader splits the "a/X b/Y" of a "diff --git" line.
func splitGitHeader(s string) (string, string, error) {
	if strings.HasPrefix(s, `"`) {
		a, rest, err := unquotePrefix(s)
		if err != nil {
			return "", "", err
		}
		rest = strings.TrimPrefix(rest, " ")
		b := rest
		if strings.HasPrefix(rest, `"`) {
			if b, _, err = unquotePrefix(rest); err != nil {
				return "", "", err
			}
		}
		return stripPrefix(a), stripPrefix(b), nil
	}
	if i := strings.Index(s, ` "`); i >= 0 {
		b, _, err := unquotePrefix(s[i+1:])
		if err != nil {
			return "", "", err
		}
		return stripPrefix(s[:i]), stripPrefix(b), nil
	}
	// Unquoted: "a/X b/X". With equal halves the split is unambiguous even
	// if X has spaces; otherwise split at " b/".
	if n, h := len(s), len(s)/2; n%2 == 1 && s[h] == ' ' && strings.HasPrefix(s, "a/") &&
		strings.HasPrefix(s[h+1:], "b/") && s[2:h] == s[h+3:] {
		return s[2:h], s[h+3:], nil
	}
	if i := strings.Index(s, " b/"); i >= 0 {
		return stripPrefix(s[:i]), stripPrefix(s[i+1:]), nil
	}
	return "", "", fmt.Errorf("diff --git header %q has no a/ b/ paths", s)
}

// unquotePrefix reads a C-quoted string at the start of s, as git writes
// paths with special characters, and returns it and the rest of s.
func unquotePrefix(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("not quoted: %q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\':
			i++
			if i >= len(s) {
				return "", "", fmt.Errorf("unterminated escape in %q", s)
			}
			switch e := s[i]; e {
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'v':
				b.WriteByte('\v')
			case '\\', '"':
				b.WriteByte(e)
			case '0', '1', '2', '3':
				if i+2 >= len(s) {
					return "", "", fmt.Errorf("short octal escape in %q", s)
				}
				v, err := strconv.ParseUint(s[i:i+3], 8, 8)
				if err != nil {
					return "", "", fmt.Errorf("bad octal escape in %q", s)
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				return "", "", fmt.Errorf("unknown escape \\%c in %q", e, s)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated quote in %q", s)
}
