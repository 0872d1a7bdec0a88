package closure

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// The NAR fan-out: one goroutine reads a NAR in narBufSize pieces and hands
// every piece, unchanged and uncopied, to three consumers that run at once —
// the SHA-256 hasher, the structure check (CheckNAR) and store.Add. A piece
// goes back to a shared free list when all three are done with it, and each
// stream has at most narBufsPerStream pieces in flight, so a stream's buffers
// are bounded (4 MiB) whatever the NAR's size, and the slowest consumer paces
// the reader.
const (
	narBufSize       = 1 << 20
	narBufsPerStream = 4
	narConsumers     = 3
)

// narFree keeps released buffers for the next stream (a few, not all: what
// streams hold beyond it is left to the GC).
var narFree = make(chan []byte, 2*narBufsPerStream)

func getNarBuf() []byte {
	select {
	case b := <-narFree:
		return b
	default:
		return make([]byte, narBufSize)
	}
}

// piece is one buffer of a NAR stream shared by the consumers.
type piece struct {
	data []byte // filled part of buf
	buf  []byte
	refs atomic.Int32
	sem  chan struct{} // the stream's in-flight bound
}

func (p *piece) release() {
	if p.refs.Add(-1) == 0 {
		select {
		case narFree <- p.buf:
		default:
		}
		<-p.sem
	}
}

// fanout reads r and delivers each piece to every consumer channel. The
// reader's terminal error (io.EOF at a clean end) is delivered to every
// consumer after the last piece. It stops early when ctx is done (after the
// Read in progress returns); done tells when it no longer uses r.
type fanout struct {
	outs [narConsumers]chan *piece
	errs [narConsumers]error // read by consumer i after outs[i] is closed
	done chan struct{}       // closed when the reader has stopped using r
}

func startFanout(ctx context.Context, r io.Reader) *fanout {
	f := &fanout{done: make(chan struct{})}
	for i := range f.outs {
		f.outs[i] = make(chan *piece, narBufsPerStream)
	}
	sem := make(chan struct{}, narBufsPerStream)
	go func() {
		var err error
		defer func() {
			for i := range f.outs {
				f.errs[i] = err
				close(f.outs[i])
			}
			close(f.done)
		}()
		for {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				err = ctx.Err()
				return
			}
			buf := getNarBuf()
			var n int
			n, err = fill(r, buf)
			if n == 0 {
				<-sem
				select {
				case narFree <- buf:
				default:
				}
				if err == nil {
					continue
				}
				return
			}
			p := &piece{data: buf[:n], buf: buf, sem: sem}
			p.refs.Store(narConsumers)
			for _, out := range f.outs {
				select {
				case out <- p:
				case <-ctx.Done():
					err = ctx.Err()
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

// fill reads into buf until it is full or r fails (io.EOF included).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
	}
	return n, nil
}

// pieceReader is consumer i of a fanout as an io.Reader. Close releases
// every piece it has not read (so the stream is not held up by a consumer
// that stopped early), in a goroutine that ends with the stream.
type pieceReader struct {
	f    *fanout
	i    int
	cur  *piece
	off  int
	err  error
	once sync.Once
}

func (pr *pieceReader) Read(b []byte) (int, error) {
	for pr.cur == nil {
		if pr.err != nil {
			return 0, pr.err
		}
		p, ok := <-pr.f.outs[pr.i]
		if !ok {
			pr.err = pr.f.errs[pr.i]
			if pr.err == nil {
				pr.err = io.EOF
			}
			continue
		}
		pr.cur, pr.off = p, 0
	}
	n := copy(b, pr.cur.data[pr.off:])
	pr.off += n
	if pr.off == len(pr.cur.data) {
		pr.cur.release()
		pr.cur = nil
	}
	return n, nil
}

// WriteTo hands whole pieces to w, without the copy of Read.
func (pr *pieceReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if pr.cur == nil {
			if pr.err != nil {
				if pr.err == io.EOF {
					return total, nil
				}
				return total, pr.err
			}
			p, ok := <-pr.f.outs[pr.i]
			if !ok {
				pr.err = pr.f.errs[pr.i]
				if pr.err == nil {
					pr.err = io.EOF
				}
				continue
			}
			pr.cur, pr.off = p, 0
		}
		n, err := w.Write(pr.cur.data[pr.off:])
		total += int64(n)
		pr.off += n
		if pr.off == len(pr.cur.data) {
			pr.cur.release()
			pr.cur = nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (pr *pieceReader) Close() {
	pr.once.Do(func() {
		if pr.cur != nil {
			pr.cur.release()
			pr.cur = nil
		}
		go func() {
			for p := range pr.f.outs[pr.i] {
				p.release()
			}
		}()
	})
}
