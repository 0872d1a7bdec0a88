package store

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	chunk "github.com/ipfs/boxo/chunker"
)

// DefaultChunker is the chunker used when AddOptions.Chunker is empty: fixed
// 256 KiB chunks, Kubo's default.
const DefaultChunker = "size-262144"

// ErrBadChunker matches every *ChunkerError with errors.Is.
var ErrBadChunker = errors.New("invalid chunker spec")

// ChunkerError reports a chunker spec that ParseChunker rejects. Spec is the
// text exactly as given.
type ChunkerError struct {
	Spec string
	Err  error
}

func (e *ChunkerError) Error() string {
	return fmt.Sprintf("invalid chunker spec %q: %v (want size-N with 1 <= N <= %d, or buzhash)",
		e.Spec, e.Err, chunk.ChunkSizeLimit)
}

func (e *ChunkerError) Unwrap() error { return e.Err }

// Is makes every *ChunkerError match ErrBadChunker.
func (e *ChunkerError) Is(target error) bool { return target == ErrBadChunker }

// Chunker is a validated chunker spec.
//
// The accepted grammar is the subset of Kubo's --chunker values that the
// node supports, with boxo's chunker.FromString semantics:
//
//	""           same as size-262144
//	"default"    same as size-262144
//	"size-N"     fixed N-byte chunks, 1 <= N <= chunker.ChunkSizeLimit,
//	             N in decimal as strconv.Atoi reads it
//	"buzhash"    content-defined chunks (boxo's buzhash parameters)
//
// Rabin chunking is rejected: the node never produces it.
type Chunker struct {
	spec string // canonical: "size-N" or "buzhash"
}

// ParseChunker validates spec. A rejected spec yields a *ChunkerError naming
// it.
func ParseChunker(spec string) (Chunker, error) {
	switch {
	case spec == "" || spec == "default":
		return Chunker{spec: DefaultChunker}, nil
	case spec == "buzhash":
		return Chunker{spec: spec}, nil
	case strings.HasPrefix(spec, "size-"):
		// Let boxo judge the number so that exactly Kubo's specs pass.
		spl, err := chunk.FromString(strings.NewReader(""), spec)
		if err != nil {
			return Chunker{}, &ChunkerError{Spec: spec, Err: err}
		}
		_ = spl
		return Chunker{spec: spec}, nil
	case strings.HasPrefix(spec, "rabin"):
		return Chunker{}, &ChunkerError{Spec: spec, Err: errors.New("rabin chunking is not supported")}
	default:
		return Chunker{}, &ChunkerError{Spec: spec, Err: errors.New("unknown chunker")}
	}
}

// String returns the canonical spec ("size-N" or "buzhash").
func (c Chunker) String() string {
	if c.spec == "" {
		return DefaultChunker
	}
	return c.spec
}

// buzhashMin is boxo's buzhash minimum chunk size: an input shorter than this
// is always one chunk.
const buzhashMin = 128 << 10

// singleChunkMax returns the largest input length that c always turns into
// a single chunk (for an empty input: no chunk at all).
func (c Chunker) singleChunkMax() int {
	s := c.String()
	if s == "buzhash" {
		return buzhashMin - 1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(s, "size-"))
	if err != nil {
		return 0
	}
	return n
}

// Splitter returns the splitter for c over r: boxo's size splitter, or for
// buzhash pooledBuzhash, which cuts exactly where boxo's does but takes its
// chunks from the buffer pool. Both splitters' chunks come from the pool
// and may be returned to it (pool.Put) once nothing refers to them.
func (c Chunker) Splitter(r io.Reader) chunk.Splitter {
	if c.String() == "buzhash" {
		return newPooledBuzhash(r)
	}
	spl, err := chunk.FromString(r, c.String())
	if err != nil {
		// Unreachable: c was validated by ParseChunker.
		panic(fmt.Sprintf("store: chunker %q: %v", c.spec, err))
	}
	return spl
}
