package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MaxLineSize bounds one audit line (16 MiB). Agentix lines are a few
// hundred bytes; a longer line stops the reader with ErrLineTooLong.
const MaxLineSize = 16 << 20

// Line is one complete line of an audit log: the bytes between two newlines,
// exactly as in the file and without the terminating "\n". A line is a leaf
// of the log's RFC 6962 tree; its leaf index is Number-1.
type Line struct {
	Number int64  // 1-based line number
	Offset int64  // byte offset of the line's first byte in the file
	Raw    []byte // exact bytes without the newline; valid until the next call to Next
	Entry  Entry  // parsed fields; zero when Err != nil
	Err    error  // non-nil (a *LineError) when the line is unparseable
}

// End is the offset just past the line's newline.
func (l *Line) End() int64 { return l.Offset + int64(len(l.Raw)) + 1 }

// Reader reads an Agentix audit log line by line.
//
// Only lines terminated by "\n" are returned. Bytes after the last newline
// are a line still being written (Agentix appends a line with one write, but
// a reader may observe the file mid-write); they are not returned and are
// reported by Pending once Next has returned io.EOF. Every complete line is
// returned, parseable or not: an unparseable line carries its error in
// Line.Err and is never skipped.
type Reader struct {
	br      *bufio.Reader
	n       int64
	off     int64
	buf     []byte
	pending []byte
	err     error
	parse   bool
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

// NoParse turns off parsing: lines come back with Raw only (Entry and Err
// unset). Used where only the exact bytes matter.
func (r *Reader) NoParse() { r.parse = false }

// Next returns the next complete line, or io.EOF after the last one. Any
// other error (a read error, ErrLineTooLong) is final.
func (r *Reader) Next() (Line, error) {
	if r.err != nil {
		return Line{}, r.err
	}
	raw, err := r.readLine()
	if err != nil {
		r.err = err
		return Line{}, err
	}
	r.n++
	l := Line{Number: r.n, Offset: r.off, Raw: raw}
	r.off += int64(len(raw)) + 1
	if r.parse {
		l.Entry, l.Err = ParseEntry(l.Number, raw)
	}
	return l, nil
}

func (r *Reader) readLine() ([]byte, error) {
	s, err := r.br.ReadSlice('\n')
	if err == nil {
		return s[:len(s)-1], nil
	}
	r.buf = append(r.buf[:0], s...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(r.buf) > MaxLineSize {
			return nil, &LineError{Line: r.n + 1, Kind: ErrLineTooLong, Msg: fmt.Sprintf("more than %d bytes at offset %d", MaxLineSize, r.off)}
		}
		s, err = r.br.ReadSlice('\n')
		r.buf = append(r.buf, s...)
	}
	if err == nil {
		return r.buf[:len(r.buf)-1], nil
	}
	if err == io.EOF {
		r.pending = bytes.Clone(r.buf)
	}
	return nil, err
}

// Pending returns the bytes after the last newline (an incomplete line), if
// any, once Next has returned io.EOF.
func (r *Reader) Pending() []byte { return r.pending }

// Lines returns the number of complete lines read so far (the last line's
// number).
func (r *Reader) Lines() int64 { return r.n }

// Offset returns the byte offset just past the last complete line read.
func (r *Reader) Offset() int64 { return r.off }
