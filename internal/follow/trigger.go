package follow

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"
)

// Debouncer turns a burst of triggers into one signal on C: Delay after the
// last trigger of the burst, and never later than MaxWait after its first
// (so a file appended to without pause is still acted on).
type Debouncer struct {
	// C receives one value per burst; it holds at most one.
	C chan struct{}

	delay, maxWait time.Duration
	mu             sync.Mutex
	timer          *time.Timer
	first          time.Time // first trigger of the pending burst; zero: none
	stopped        bool
}

// NewDebouncer returns a Debouncer; maxWait < delay is taken as delay.
func NewDebouncer(delay, maxWait time.Duration) *Debouncer {
	if maxWait < delay {
		maxWait = delay
	}
	return &Debouncer{C: make(chan struct{}, 1), delay: delay, maxWait: maxWait}
}

// Trigger notes one event.
func (d *Debouncer) Trigger() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	now := time.Now()
	if d.first.IsZero() {
		d.first = now
	}
	wait := d.delay
	if rem := d.maxWait - now.Sub(d.first); rem < wait {
		wait = max(rem, 0)
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
	} else {
		d.timer.Reset(wait)
	}
}

func (d *Debouncer) fire() {
	d.mu.Lock()
	d.first = time.Time{}
	stopped := d.stopped
	d.mu.Unlock()
	if stopped {
		return
	}
	select {
	case d.C <- struct{}{}:
	default:
	}
}

// Stop drops any pending signal.
func (d *Debouncer) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
}

// FileState is what the poller compares: whether the file exists, its size,
// modification time and (on Unix) inode, so a replacement by rename is seen
// even when size and time agree.
type FileState struct {
	Exists bool
	Size   int64
	Mod    time.Time
	Ino    uint64
}

// Same reports whether s and o are the same state.
func (s FileState) Same(o FileState) bool {
	return s.Exists == o.Exists && s.Size == o.Size && s.Mod.Equal(o.Mod) && s.Ino == o.Ino
}

// Stat returns the FileState of path (following symlinks when follow is
// set; else of the link itself). A missing file is a zero state, not an
// error.
func Stat(path string, follow bool) (FileState, error) {
	st := os.Lstat
	if follow {
		st = os.Stat
	}
	fi, err := st(path)
	if errors.Is(err, fs.ErrNotExist) {
		return FileState{}, nil
	}
	if err != nil {
		return FileState{}, err
	}
	return FileState{Exists: true, Size: fi.Size(), Mod: fi.ModTime(), Ino: inode(fi)}, nil
}

// Poller reports whether a file changed since it last looked: the polling
// fallback for when file-system notifications fail or miss an event.
type Poller struct {
	path   string
	follow bool
	last   FileState
}

// NewPoller returns a Poller of path holding its current state.
func NewPoller(path string, follow bool) *Poller {
	p := &Poller{path: path, follow: follow}
	p.last, _ = Stat(path, follow)
	return p
}

// Changed stats the file and reports whether its state differs from the
// last one seen (a stat error counts as no change).
func (p *Poller) Changed() bool {
	cur, err := Stat(p.path, p.follow)
	if err != nil {
		return false
	}
	if cur.Same(p.last) {
		return false
	}
	p.last = cur
	return true
}

// Backoff is the delay before each retry of a failed step: Min, doubling
// up to Max.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the delay before the next retry.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur *= 2
	}
	if b.cur > b.Max {
		b.cur = b.Max
	}
	return b.cur
}

// Reset is called after a success.
func (b *Backoff) Reset() { b.cur = 0 }
