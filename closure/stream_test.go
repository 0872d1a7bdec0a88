package closure

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"sync"
	"testing"
	"testing/iotest"
)

// TestFanout checks that every consumer of a fanout sees exactly the input
// bytes, then the source's error, whatever the input size and however the
// source splits its reads; and that a consumer that stops early (Close)
// does not hold the others up.
func TestFanout(t *testing.T) {
	data := make([]byte, 3*narBufSize+narBufSize/2)
	rand.New(rand.NewSource(1)).Read(data)
	boom := errors.New("source failed")
	for _, tc := range []struct {
		name    string
		size    int
		src     func(io.Reader) io.Reader
		srcErr  error // appended after size bytes
		closeAt int   // consumer 1 closes after this many bytes (-1: never)
	}{
		{"empty", 0, nil, nil, -1},
		{"one byte", 1, nil, nil, -1},
		{"one piece exactly", narBufSize, nil, nil, -1},
		{"many pieces, more than in flight", len(data), nil, nil, -1},
		{"one-byte reads", 70000, iotest.OneByteReader, nil, -1},
		{"half reads", len(data), iotest.HalfReader, nil, -1},
		{"source error mid-stream", 2*narBufSize + 5, nil, boom, -1},
		{"consumer closes early", len(data), nil, nil, narBufSize / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(data[:tc.size])
			if tc.srcErr != nil {
				src = io.MultiReader(src, iotest.ErrReader(tc.srcErr))
			}
			if tc.src != nil {
				src = tc.src(src)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := startFanout(ctx, src)
			var wg sync.WaitGroup
			got := make([][]byte, narConsumers)
			errs := make([]error, narConsumers)
			for i := range narConsumers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pr := &pieceReader{f: f, i: i}
					var buf bytes.Buffer
					if i == 1 && tc.closeAt >= 0 {
						_, errs[i] = io.CopyN(&buf, pr, int64(tc.closeAt))
						pr.Close()
					} else if i == 0 {
						_, errs[i] = pr.WriteTo(&buf)
					} else {
						_, errs[i] = io.Copy(&buf, pr)
					}
					got[i] = buf.Bytes()
				}()
			}
			wg.Wait()
			<-f.done
			for i := range narConsumers {
				want := data[:tc.size]
				if i == 1 && tc.closeAt >= 0 {
					want = data[:tc.closeAt]
				}
				if !errors.Is(errs[i], tc.srcErr) && !(tc.srcErr == nil && errs[i] == nil) {
					t.Errorf("consumer %d: error %v, want %v", i, errs[i], tc.srcErr)
				}
				if !bytes.Equal(got[i], want) {
					t.Errorf("consumer %d: got %d bytes, want %d (equal prefix: %v)", i, len(got[i]), len(want), bytes.HasPrefix(want, got[i]))
				}
			}
		})
	}
}
