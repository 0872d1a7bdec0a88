package follow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/internal/node"
)

// wsWatcher follows one workspace.
type wsWatcher struct {
	f      *Follower
	cancel context.CancelFunc
	cfg    node.WorkspaceConfig // guarded by f.mu
	st     WorkspaceStatus      // guarded by f.mu
}

func (w *wsWatcher) path() string {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.cfg.Path
}

func (w *wsWatcher) update(fn func(*WorkspaceStatus)) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	fn(&w.st)
}

// run watches WS/.agentix (and WS, for .agentix to appear) with fsnotify
// and polls the audit log's size, time and inode; each change, debounced,
// runs one ingest. A failed ingest is retried with backoff; a refused
// (tampered) log is ingested again only once it changes.
func (w *wsWatcher) run(ctx context.Context) {
	f := w.f
	defer f.wg.Done()
	ws := w.path()
	agentixDir := filepath.Join(ws, ".agentix")
	logPath := filepath.Join(ws, filepath.FromSlash(audit.AuditLogPath))
	log := f.log.With("workspace", ws)

	deb := NewDebouncer(f.o.Debounce, f.o.MaxWait)
	defer deb.Stop()
	poll := NewPoller(logPath, true)
	fw := newWatch(log)
	defer fw.close()
	fw.add(ws)
	fw.add(agentixDir)
	w.update(func(s *WorkspaceStatus) { s.Watch = fw.mode() })

	tick := time.NewTicker(f.o.Poll)
	defer tick.Stop()
	var bo = Backoff{Min: f.o.MinBackoff, Max: f.o.MaxBackoff}
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	var refused *FileState // the log version last refused as tampered
	ingest := func() {
		if retryC != nil {
			return // the retry will run it
		}
		st, _ := Stat(logPath, true)
		if refused != nil && st.Same(*refused) {
			return
		}
		_, err := f.ingestWorkspace(ctx, ws)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			bo.Reset()
			refused = nil
		case errors.Is(err, audit.ErrNotAppendOnly):
			// Recorded as evidence; retrying the same bytes would only
			// record it again.
			refused = &st
		default:
			d := bo.Next()
			retry = time.NewTimer(d)
			retryC = retry.C
			w.update(func(s *WorkspaceStatus) { s.NextRetry = time.Now().Add(d) })
			log.Info("ingest will be retried", "in", d)
		}
	}
	deb.Trigger() // what was appended while nobody watched
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.events():
			if !ok {
				fw.broken()
				w.update(func(s *WorkspaceStatus) { s.Watch = fw.mode() })
				continue
			}
			switch ev.Name {
			case agentixDir:
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					fw.forget(agentixDir)
				} else {
					fw.add(agentixDir)
				}
				deb.Trigger()
			case logPath:
				deb.Trigger()
			}
		case err, ok := <-fw.errors():
			if !ok {
				fw.broken()
				w.update(func(s *WorkspaceStatus) { s.Watch = fw.mode() })
				continue
			}
			log.Warn("file notifications failed; polling continues", "err", err)
		case <-tick.C:
			fw.add(agentixDir)
			w.update(func(s *WorkspaceStatus) { s.Watch = fw.mode() })
			if poll.Changed() {
				deb.Trigger()
			}
		case <-deb.C:
			ingest()
		case <-retryC:
			retry, retryC = nil, nil
			w.update(func(s *WorkspaceStatus) { s.NextRetry = time.Time{} })
			ingest()
		}
	}
}

// ingestWorkspace runs one ingest of ws through the node's ingester, as
// `agentix-store ingest` does, serialised with every other ingest of ws. A
// workspace with no audit log yet has nothing to ingest.
func (f *Follower) ingestWorkspace(ctx context.Context, ws string) (*audit.IngestResult, error) {
	l := f.wsLock(ws)
	l.Lock()
	defer l.Unlock()
	log := f.log.With("workspace", ws)
	r, err := f.ingestLocked(ctx, ws)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	f.record(StepIngest, err)
	f.mu.Lock()
	if w := f.ws[ws]; w != nil {
		now := time.Now()
		if err != nil {
			w.st.Failures++
			w.st.Error = err.Error()
			if errors.Is(err, audit.ErrNotAppendOnly) {
				w.st.Tampered++
			}
		} else {
			w.st.Error = ""
			if r != nil {
				w.st.LastIngest = now
				w.st.Lines = r.Lines
				if r.Snapshot.Defined() {
					w.st.Snapshot = r.Snapshot.String()
				}
			}
		}
	}
	f.mu.Unlock()
	switch {
	case errors.Is(err, audit.ErrNotAppendOnly):
		log.Error("audit log refused: it does not continue the accepted snapshot (both versions kept)", "err", err)
	case err != nil:
		log.Error("ingest failed", "err", err)
	case r != nil && !r.Unchanged:
		log.Info("ingested", "lines", r.Lines, "new", r.NewLines, "snapshot", r.Snapshot, "attestations", len(r.Attestations))
		if r.Boundary != nil {
			if berr := r.Boundary.Err(); berr != nil {
				log.Warn("the audit log shows a safety-boundary violation (attested)", "err", berr)
			}
		}
	}
	return r, err
}

func (f *Follower) ingestLocked(ctx context.Context, ws string) (*audit.IngestResult, error) {
	fi, err := os.Stat(ws)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", ws, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("workspace %s is not a directory", ws)
	}
	if _, err := os.Lstat(filepath.Join(ws, filepath.FromSlash(audit.AuditLogPath))); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	ing, err := f.n.NewIngester(node.IngestSetup{})
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", ws, err)
	}
	r, err := ing.Ingest(ctx, ws, audit.IngestOptions{})
	if err != nil {
		var te *audit.TamperError
		if errors.As(err, &te) {
			return r, err // names the workspace
		}
		return r, fmt.Errorf("ingest %s: %w", ws, err)
	}
	return r, nil
}

// watch is an fsnotify watcher that may be missing or broken, in which
// case the pollers do the work.
type watch struct {
	w      *fsnotify.Watcher
	dirs   map[string]bool
	ok     bool
	log    interface{ Warn(string, ...any) }
	warned bool
}

func newWatch(log interface{ Warn(string, ...any) }) *watch {
	fw := &watch{dirs: map[string]bool{}, log: log}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("file notifications unavailable; polling", "err", err)
		return fw
	}
	fw.w, fw.ok = w, true
	return fw
}

// add watches dir if it exists and is not watched yet.
func (fw *watch) add(dir string) {
	if !fw.ok || fw.dirs[dir] {
		return
	}
	if err := fw.w.Add(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !fw.warned {
			fw.warned = true
			fw.log.Warn("cannot watch directory; polling it", "dir", dir, "err", err)
		}
		return
	}
	fw.dirs[dir] = true
}

func (fw *watch) forget(dir string) {
	if fw.ok && fw.dirs[dir] {
		fw.w.Remove(dir)
		delete(fw.dirs, dir)
	}
}

func (fw *watch) events() <-chan fsnotify.Event {
	if !fw.ok {
		return nil
	}
	return fw.w.Events
}

func (fw *watch) errors() <-chan error {
	if !fw.ok {
		return nil
	}
	return fw.w.Errors
}

// broken gives up on notifications (the watcher closed its channels).
func (fw *watch) broken() {
	if fw.ok {
		fw.log.Warn("file notifications stopped; polling")
		fw.ok = false
	}
}

// mode is "fsnotify" while every wanted directory is watched, else "poll".
func (fw *watch) mode() string {
	if fw.ok && len(fw.dirs) > 0 {
		return "fsnotify"
	}
	return "poll"
}

func (fw *watch) close() {
	if fw.w != nil {
		fw.w.Close()
	}
}
