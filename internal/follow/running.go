package follow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
)

// runningWatcher follows the running-system symlink.
type runningWatcher struct {
	f      *Follower
	path   string
	cancel context.CancelFunc
	kick   chan struct{} // the workspaces changed

	// Owned by run's goroutine.
	last     attested
	imported struct {
		root string
		c    cid.Cid
	}
}

// attested is the system last attested.
type attested struct {
	root, ws string
	// fromLog: learnt from the log at start, so the workspace it was
	// attested with is not compared (a restart never re-attests).
	fromLog bool
}

func (r *runningWatcher) update(fn func(*RunningStatus)) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if r.f.rs == r {
		fn(&r.f.running)
	}
}

// ErrNotInStore: the running-system symlink leads somewhere other than a
// store path.
var ErrNotInStore = errors.New("the running system does not resolve to a Nix store path")

// ResolveStorePath follows the symlink chain from path until it reaches
// storeDir and returns the store path (storeDir/<hash>-<name>) it lands in.
// It does not resolve symlinks inside the store, nor storeDir itself.
func ResolveStorePath(path, storeDir string) (string, error) {
	p := filepath.Clean(path)
	for range 40 {
		if under(storeDir, p) {
			break
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			break
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = filepath.Clean(t)
	}
	if !under(storeDir, p) {
		return "", fmt.Errorf("%w: %s leads to %s, not under %s", ErrNotInStore, path, p, storeDir)
	}
	rel, _ := filepath.Rel(storeDir, p)
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	return filepath.Join(storeDir, first), nil
}

func under(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

var generationRE = regexp.MustCompile(`^system-([0-9]+)-link$`)

// Generation returns the NixOS generation N of the profilesDir's
// system-N-link that resolves to target (the highest if several do), or 0.
func Generation(profilesDir, storeDir, target string) int64 {
	ents, err := os.ReadDir(profilesDir)
	if err != nil {
		return 0
	}
	var gen int64
	for _, e := range ents {
		m := generationRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n <= gen {
			continue
		}
		if t, err := ResolveStorePath(filepath.Join(profilesDir, e.Name()), storeDir); err == nil && t == target {
			gen = n
		}
	}
	return gen
}

// run watches the symlink's directory with fsnotify (the link is replaced
// by rename) and polls where it leads; each change, debounced, imports and
// attests the new system. A failure is retried with backoff.
func (r *runningWatcher) run(ctx context.Context) {
	f := r.f
	defer f.wg.Done()
	log := f.log.With("runningSystem", r.path)
	storeDir := f.o.Nix.StoreDir()
	if root, id, ws, unproven, err := f.lastAttested(ctx); err != nil {
		log.Warn("cannot read the latest running-config; the running system will be attested again", "err", err)
	} else if root != "" {
		r.last = attested{root: root, ws: ws, fromLog: true}
		r.update(func(s *RunningStatus) {
			s.Attested, s.RunningConfig, s.Workspace, s.Unproven = root, id, ws, unproven
		})
	}

	deb := NewDebouncer(f.o.Debounce, f.o.MaxWait)
	defer deb.Stop()
	fw := newWatch(log)
	defer fw.close()
	parent := filepath.Dir(r.path)
	fw.add(parent)
	tick := time.NewTicker(f.o.Poll)
	defer tick.Stop()
	seen, _ := ResolveStorePath(r.path, storeDir)
	bo := Backoff{Min: f.o.MinBackoff, Max: f.o.MaxBackoff}
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	step := func() {
		if retryC != nil {
			return
		}
		err := r.follow(ctx, storeDir)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			bo.Reset()
			r.update(func(s *RunningStatus) { s.Error, s.NextRetry = "", time.Time{} })
			return
		}
		d := bo.Next()
		retry = time.NewTimer(d)
		retryC = retry.C
		r.update(func(s *RunningStatus) { s.Error, s.NextRetry = err.Error(), time.Now().Add(d) })
		log.Error("following the running system failed; will retry", "err", err, "in", d)
	}
	deb.Trigger()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.events():
			if !ok {
				fw.broken()
				continue
			}
			if ev.Name == r.path {
				deb.Trigger()
			}
		case err, ok := <-fw.errors():
			if !ok {
				fw.broken()
				continue
			}
			log.Warn("file notifications failed; polling continues", "err", err)
		case <-tick.C:
			fw.add(parent)
			if t, _ := ResolveStorePath(r.path, storeDir); t != seen {
				seen = t
				deb.Trigger()
			}
		case <-r.kick:
			deb.Trigger()
		case <-deb.C:
			step()
		case <-retryC:
			retry, retryC = nil, nil
			step()
		}
	}
}

// follow attests the system the symlink leads to unless it was attested
// last: ingest its workspace (so the applies it was built from are in the
// log), import its closure, publish its running-config.
func (r *runningWatcher) follow(ctx context.Context, storeDir string) error {
	f := r.f
	defer r.update(func(s *RunningStatus) { s.LastCheck = time.Now() })
	log := f.log.With("runningSystem", r.path)
	target, err := ResolveStorePath(r.path, storeDir)
	if errors.Is(err, fs.ErrNotExist) {
		r.update(func(s *RunningStatus) { s.Target = "" })
		log.Debug("no running system to follow")
		return nil
	}
	if err != nil {
		f.record(StepImport, err)
		return err
	}
	r.update(func(s *RunningStatus) { s.Target = target })
	ws, reason := f.selectWorkspace()
	if r.last.root == target && (r.last.fromLog || r.last.ws == ws.Path) {
		return nil
	}
	log = log.With("target", target)
	if ws.Path != "" {
		// A failed ingest is recorded by the workspace's own step; the
		// chain is then built from what was ingested before.
		f.ingestWorkspace(ctx, ws.Path)
	}
	c := r.imported.c
	if r.imported.root != target {
		log.Info("importing the running system's closure")
		res, err := closure.Import(ctx, f.n.Store, f.n.DB, f.o.Nix, target, closure.ImportOptions{})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.record(StepImport, err)
		if err != nil {
			return fmt.Errorf("import the closure of %s: %w", target, err)
		}
		r.imported.root, r.imported.c, c = target, res.Closure, res.Closure
		log.Info("imported", "closure", res.Closure, "paths", res.Paths, "reused", res.Reused)
	}
	gen := Generation(f.o.ProfilesDir, storeDir, target)
	res, err := f.attestRunning(ctx, c, target, ws, reason, gen)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.record(StepAttest, err)
	if err != nil {
		return fmt.Errorf("attest the running system %s: %w", target, err)
	}
	r.last = attested{root: target, ws: ws.Path}
	usedWS := ""
	if res.Link != nil {
		usedWS = res.Link.Workspace
	}
	r.update(func(s *RunningStatus) {
		s.Attested, s.RunningConfig, s.Workspace, s.Unproven, s.LastAttest = target, res.ID.String(), usedWS, res.Unproven, time.Now()
	})
	for _, w := range res.Warnings {
		log.Warn("attested with a warning", "warning", w)
	}
	if res.Unproven != "" {
		log.Warn("attested the running system; its configuration is unproven", "runningConfig", res.ID, "generation", gen, "unproven", res.Unproven)
	} else {
		log.Info("attested the running system with its configuration chain", "runningConfig", res.ID, "generation", gen, "workspace", usedWS)
	}
	return nil
}

// attestRunning publishes the running-config of closure c: with the
// configuration chain of ws when it can be computed, else unproven with
// the reason.
func (f *Follower) attestRunning(ctx context.Context, c cid.Cid, target string, ws node.WorkspaceConfig, reason string, gen int64) (*node.AttestResult, error) {
	if reason == "" {
		reason = notGitFlake(ws.Path)
	}
	vr, err := closure.Verify(ctx, f.n.Store, c) // once, for both attempts
	if err != nil {
		return nil, err
	}
	if reason == "" {
		res, err := f.n.AttestRunning(ctx, c, f.signer, node.AttestOptions{Workspace: ws.Path, Host: ws.Host, Attr: ws.Attr, Generation: gen, Verified: vr})
		if err == nil || !(errors.Is(err, chain.ErrNotRunning) || errors.Is(err, chain.ErrEvaluation) || errors.Is(err, chain.ErrCannotEvaluate)) {
			return res, err
		}
		reason = fmt.Sprintf("the configuration of workspace %s does not evaluate to the running system %s: %s", ws.Path, target, oneLine(err))
	}
	return f.n.AttestRunning(ctx, c, f.signer, node.AttestOptions{Generation: gen, Unproven: reason, Verified: vr})
}

// notGitFlake says why ws is not a git-repo flake, or "".
func notGitFlake(ws string) string {
	if err := chain.CheckGitFlake(ws); err != nil {
		return err.Error()
	}
	return ""
}
