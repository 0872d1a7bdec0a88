package store

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestPackDirectRefused simulates filesystems that refuse O_DIRECT, at open
// (tmpfs on older kernels) or at the first write, and checks that appends
// fall back to buffered writes and read back intact.
func TestPackDirectRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		open     func(string) (*os.File, error)
		failOnce bool // the first pwritev fails with EINVAL
	}{
		{"refused at open", func(path string) (*os.File, error) {
			return nil, fmt.Errorf("open pack %s: %w: %w", path, errNoDirect, syscall.EINVAL)
		}, false},
		{"refused at write", openDirect, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(o func(string) (*os.File, error), w func(*os.File, [][]byte, int64) (int, error)) {
				openDirectFn, pwritevFn = o, w
			}(openDirectFn, pwritevFn)
			openDirectFn = tc.open
			calls := 0
			pwritevFn = func(f *os.File, iov [][]byte, off int64) (int, error) {
				if calls++; tc.failOnce && calls == 1 {
					return 0, &os.PathError{Op: "pwritev", Path: f.Name(), Err: syscall.EINVAL}
				}
				return pwritev(f, iov, off)
			}
			p := newPacks(t.TempDir(), false, false)
			defer p.close()
			var data [][]byte
			for i := range 5 {
				data = append(data, bytes.Repeat([]byte{byte(i + 1)}, 70_000+i*4096))
			}
			data = append(data, alignedBuf(256<<10)) // a zero-copy block
			refs, err := p.appendBlocks(data, true)
			if err != nil {
				t.Fatal(err)
			}
			if p.direct || !p.noDirect {
				t.Fatalf("direct = %v, noDirect = %v after a refusal; want buffered", p.direct, p.noDirect)
			}
			if tc.failOnce && calls < 2 {
				t.Fatalf("pwritev called %d times, want a retry after EINVAL", calls)
			}
			for i, r := range refs {
				got := make([]byte, r.n)
				if err := p.read(r, got); err != nil || !bytes.Equal(got, data[i]) {
					t.Fatalf("block %d at %+v: %v, equal %v", i, r, err, bytes.Equal(got, data[i]))
				}
				if r.off%packAlign != 0 {
					t.Fatalf("block %d at unaligned offset %d", i, r.off)
				}
			}
		})
	}
}

// TestPackRefRoundTrip pins the index value format.
func TestPackRefRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []byte
		want packRef
		ok   bool
	}{
		{"valid", packRef{id: 7, off: 3 << 30, n: 262144}.encode(), packRef{id: 7, off: 3 << 30, n: 262144}, true},
		{"short", []byte{0, 0, 0, 1}, packRef{}, false},
		{"id zero", packRef{id: 0, off: 0, n: 1}.encode(), packRef{}, false},
		{"unaligned offset", packRef{id: 1, off: 100, n: 1}.encode(), packRef{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodePackRef(tc.v)
			if tc.ok != (err == nil) || (tc.ok && got != tc.want) {
				t.Fatalf("decodePackRef = %+v, %v; want %+v, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
}
