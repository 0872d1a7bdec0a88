package progress

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar reports bytes processed. A nil *Bar is valid and draws nothing.
type Bar struct {
	pb *progressbar.ProgressBar
}

// Enabled reports whether f is a terminal.
func Enabled(f *os.File) bool { return f != nil && term.IsTerminal(int(f.Fd())) }

// New returns a bar on stderr for total bytes (-1 if unknown), or nil when
// stderr is not a terminal or quiet is set.
func New(total int64, what string, quiet bool) *Bar {
	if quiet || !Enabled(os.Stderr) {
		return nil
	}
	pb := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
	)
	return &Bar{pb: pb}
}

// Set records that n bytes in all have been processed.
func (b *Bar) Set(n int64) {
	if b != nil {
		_ = b.pb.Set64(n)
	}
}

// Add records n more bytes.
func (b *Bar) Add(n int64) {
	if b != nil {
		_ = b.pb.Add64(n)
	}
}

// Done clears the bar.
func (b *Bar) Done() {
	if b != nil {
		_ = b.pb.Finish()
	}
}

// Reader counts bytes read through r on the bar.
func (b *Bar) Reader(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	return &reader{r: r, b: b}
}

type reader struct {
	r io.Reader
	b *Bar
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.Add(int64(n))
	return n, err
}

// Func returns a progress callback for an operation whose total is known
// only once it reports (a daemon's streamed progress, say): the bar is made
// at the first call, once, and done ends it. Quiet or off a terminal, both
// do nothing.
func Func(what string, quiet bool) (report func(done, total int64), done func()) {
	if quiet || !Enabled(os.Stderr) {
		return func(int64, int64) {}, func() {}
	}
	var bar *Bar
	return func(n, total int64) {
			if bar == nil {
				bar = New(total, what, false)
			}
			bar.Set(n)
		}, func() {
			bar.Done()
		}
}
