package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/transparency-dev/merkle/rfc6962"
)

// MaxLineSize bounds one audit line (16 MiB). Agentix lines are a few
// hundred bytes; a longer line is returned with ErrLineTooLong (its bytes
// hashed as they stream by, only its first MaxLineSize bytes kept), and
// reading goes on with the next line.
const MaxLineSize = 16 << 20

// Line is one complete line of an audit log: the bytes between two newlines,
// exactly as in the file and without the terminating "\n". A line is a leaf
// of the log's RFC 6962 tree; its leaf index is Number-1.
type Line struct {
	Number int64 // 1-based line number
	Offset int64 // byte offset of the line's first byte in the file
	Size   int64 // length of the line in bytes, without the newline
	// Raw is the line's exact bytes without the newline, valid until the
	// next call to Next. For a line longer than MaxLineSize (Err matches
	// ErrLineTooLong) it is only the first MaxLineSize bytes.
	Raw  []byte
	Leaf []byte // RFC 6962 leaf hash of the whole line
	// Entry holds the parsed fields: zero when the line is not a JSON
	// object without duplicate or case-variant keys, partial after
	// ErrMissingKey or ErrBadValue (see ParseEntry).
	Entry Entry
	Err   error // non-nil (a *LineError) when the line is unparseable
}

// End is the offset just past the line's newline.
func (l *Line) End() int64 { return l.Offset + l.Size + 1 }

// Reader reads an Agentix audit log line by line.
//
// Only lines terminated by "\n" are returned. Bytes after the last newline
// are a line still being written (Agentix appends a line with one write, but
// a reader may observe the file mid-write); they are not returned and are
// reported by Pending once Next has returned io.EOF. Every complete line is
// returned, parseable or not: an unparseable line, an over-long one
// included, carries its error in Line.Err and is never skipped.
type Reader struct {
	br       *bufio.Reader
	n        int64
	off      int64
	buf      []byte
	pending  []byte
	pendingN int64
	err      error
	parse    bool
}

// NewReader returns a Reader over r. first is the 1-based number of the
// first line r yields and offset its byte offset in the file, so that a
// Reader can resume in the middle of a log. Lines are parsed unless
// NoParse is called.
func NewReader(r io.Reader, first, offset int64) *Reader {
	if first < 1 {
		first = 1
	}
	return &Reader{br: bufio.NewReaderSize(r, 1<<20), n: first - 1, off: offset, parse: true}
}

// NoParse turns off parsing: lines come back with Raw, Size and Leaf only
// (Entry unset; Err set only for an over-long line). Used where only the
// exact bytes matter.
func (r *Reader) NoParse() { r.parse = false }

// Next returns the next complete line, or io.EOF after the last one. Any
// other error (a read error) is final.
func (r *Reader) Next() (Line, error) {
	if r.err != nil {
		return Line{}, r.err
	}
	raw, size, leaf, err := r.readLine()
	if err != nil {
		r.err = err
		return Line{}, err
	}
	r.n++
	l := Line{Number: r.n, Offset: r.off, Size: size, Raw: raw, Leaf: leaf}
	r.off += size + 1
	switch {
	case size > MaxLineSize:
		l.Err = &LineError{Line: l.Number, Kind: ErrLineTooLong,
			Msg: fmt.Sprintf("%d bytes at offset %d, limit %d (stored, not parsed)", size, l.Offset, MaxLineSize)}
	case r.parse:
		l.Entry, l.Err = ParseEntry(l.Number, raw)
	}
	return l, nil
}

// readLine reads up to the next newline. It returns the line (at most its
// first MaxLineSize bytes), its full size and its leaf hash. Past
// MaxLineSize the bytes are hashed as they are read, not kept.
func (r *Reader) readLine() (raw []byte, size int64, leaf []byte, err error) {
	s, err := r.br.ReadSlice('\n')
	if err == nil {
		raw = s[:len(s)-1]
		return raw, int64(len(raw)), LeafHash(raw), nil
	}
	r.buf = r.buf[:0]
	var h hash.Hash
	add := func(p []byte) {
		size += int64(len(p))
		if h == nil && len(r.buf)+len(p) <= MaxLineSize {
			r.buf = append(r.buf, p...)
			return
		}
		if h == nil {
			h = sha256.New()
			h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
			h.Write(r.buf)
			r.buf = append(r.buf, p[:MaxLineSize-len(r.buf)]...)
		}
		h.Write(p)
	}
	for errors.Is(err, bufio.ErrBufferFull) {
		add(s)
		s, err = r.br.ReadSlice('\n')
	}
	if err != nil {
		add(s)
		if err == io.EOF {
			r.pending, r.pendingN = bytes.Clone(r.buf), size
		}
		return nil, 0, nil, err
	}
	add(s[:len(s)-1])
	if h == nil {
		return r.buf, size, LeafHash(r.buf), nil
	}
	return r.buf, size, h.Sum(nil), nil
}

// Pending returns the bytes after the last newline (an incomplete line), if
// any, once Next has returned io.EOF: at most the first MaxLineSize of them
// (PendingSize says how many there are).
func (r *Reader) Pending() []byte { return r.pending }

// PendingSize is the number of bytes after the last newline, once Next has
// returned io.EOF.
func (r *Reader) PendingSize() int64 { return r.pendingN }

// Lines returns the number of complete lines read so far (the last line's
// number).
func (r *Reader) Lines() int64 { return r.n }

// Offset returns the byte offset just past the last complete line read.
func (r *Reader) Offset() int64 { return r.off }

// lineHasher hashes log bytes as they stream by (as they are stored): the
// RFC 6962 leaf hash of each complete line, appended to tree, and the
// SHA-256 of the last complete line with its newline. Memory is bounded
// whatever the line lengths. Comparing tree with the tree of the lines as
// they were read and evaluated shows that the bytes stored are the bytes
// read.
type lineHasher struct {
	tree      *Tree
	leaf      hash.Hash // current line, after the 0x00 leaf prefix
	line      hash.Hash // current line with its newline
	off       int64     // offset of the next byte
	start     int64     // offset of the current line
	lastOff   int64     // offset of the last complete line
	lastSHA   []byte
	completed int64 // complete lines seen
}

func newLineHasher(t *Tree, offset int64) *lineHasher {
	w := &lineHasher{tree: t, leaf: sha256.New(), line: sha256.New(), off: offset, start: offset, lastOff: -1}
	w.leaf.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	return w
}

func (w *lineHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.leaf.Write(p)
			w.line.Write(p)
			w.off += int64(len(p))
			break
		}
		w.leaf.Write(p[:i])
		w.line.Write(p[:i+1])
		w.tree.AppendLeafHash(w.leaf.Sum(nil))
		w.lastSHA, w.lastOff = w.line.Sum(nil), w.start
		w.completed++
		w.leaf.Reset()
		w.leaf.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
		w.line.Reset()
		w.off += int64(i + 1)
		w.start = w.off
		p = p[i+1:]
	}
	return n, nil
}
