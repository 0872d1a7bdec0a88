package follow

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// count drains d.C for dur and returns how many signals arrived.
func count(d *Debouncer, dur time.Duration) int {
	n := 0
	deadline := time.After(dur)
	for {
		select {
		case <-d.C:
			n++
		case <-deadline:
			return n
		}
	}
}

func TestDebouncerBurstIsOneSignal(t *testing.T) {
	d := NewDebouncer(50*time.Millisecond, time.Second)
	defer d.Stop()
	for range 10 {
		d.Trigger()
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(d, 300*time.Millisecond); n != 1 {
		t.Fatalf("a burst of 10 triggers gave %d signals, want 1", n)
	}
	// A later, separate change is signalled again.
	d.Trigger()
	if n := count(d, 300*time.Millisecond); n != 1 {
		t.Fatalf("a second burst gave %d signals, want 1", n)
	}
}

func TestDebouncerMaxWaitUnderContinuousTriggers(t *testing.T) {
	// Triggers every 20 ms never leave the 100 ms delay quiet; MaxWait
	// still signals within 300 ms of the first.
	d := NewDebouncer(100*time.Millisecond, 300*time.Millisecond)
	defer d.Stop()
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				d.Trigger()
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	defer close(stop)
	select {
	case <-d.C:
		if el := time.Since(start); el > 450*time.Millisecond {
			t.Fatalf("first signal after %v under continuous triggers, want ≤ MaxWait (300ms) plus slack", el)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no signal within 2 s under continuous triggers: MaxWait not honoured")
	}
}

func TestDebouncerStopDropsPending(t *testing.T) {
	d := NewDebouncer(30*time.Millisecond, time.Second)
	d.Trigger()
	d.Stop()
	if n := count(d, 150*time.Millisecond); n != 0 {
		t.Fatalf("stopped debouncer signalled %d times", n)
	}
}

func TestPoller(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "audit.jsonl")
	pl := NewPoller(p, true)
	steps := []struct {
		name   string
		do     func()
		change bool
	}{
		{"nothing yet", func() {}, false},
		{"created", func() { os.WriteFile(p, []byte("a\n"), 0o644) }, true},
		{"unchanged", func() {}, false},
		{"appended", func() {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("b\n")
			f.Close()
		}, true},
		{"replaced by rename, same size and time", func() {
			fi, _ := os.Stat(p)
			tmp := filepath.Join(dir, "tmp")
			os.WriteFile(tmp, []byte("c\nd\n"), 0o644)
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			os.Rename(tmp, p)
		}, true},
		{"removed", func() { os.Remove(p) }, true},
		{"still gone", func() {}, false},
	}
	for _, s := range steps {
		s.do()
		if got := pl.Changed(); got != s.change {
			t.Fatalf("%s: Changed() = %v, want %v", s.name, got, s.change)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 10 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		if got := b.Next(); got != w*time.Second {
			t.Fatalf("retry %d: %v, want %v", i, got, w*time.Second)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Fatalf("after Reset: %v, want 1s", got)
	}
}

func TestResolveStorePath(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	sys := filepath.Join(store, "aaaa-nixos-system-x")
	os.MkdirAll(filepath.Join(sys, "sw"), 0o755)
	dir := t.TempDir()
	link := func(name, to string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(to, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	direct := link("current", sys)
	chained := link("chained", "current") // relative, to another link
	inside := link("inside", filepath.Join(sys, "sw"))
	outside := link("outside", t.TempDir())
	cases := []struct {
		path string
		want string
		err  error
	}{
		{direct, sys, nil},
		{chained, sys, nil},
		{inside, sys, nil},
		{outside, "", ErrNotInStore},
		{filepath.Join(dir, "missing"), "", fs.ErrNotExist},
	}
	for _, c := range cases {
		got, err := ResolveStorePath(c.path, store)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err %v, want %v", c.path, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.path, got, err, c.want)
		}
	}
}

func TestGeneration(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	a, b := filepath.Join(store, "aaaa-sys"), filepath.Join(store, "bbbb-sys")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(b, 0o755)
	prof := t.TempDir()
	for name, to := range map[string]string{"system-1-link": a, "system-2-link": b, "system-3-link": a, "system": "system-3-link", "system-x-link": b} {
		if err := os.Symlink(to, filepath.Join(prof, name)); err != nil {
			t.Fatal(err)
		}
	}
	if g := Generation(prof, store, a); g != 3 {
		t.Errorf("generation of a = %d, want 3 (the highest link to it)", g)
	}
	if g := Generation(prof, store, b); g != 2 {
		t.Errorf("generation of b = %d, want 2", g)
	}
	if g := Generation(prof, store, filepath.Join(store, "cccc-sys")); g != 0 {
		t.Errorf("generation of a system no link names = %d, want 0", g)
	}
}
