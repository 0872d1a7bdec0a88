package follow

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/internal/node"
)

// Steps of following, as metrics and status name them.
const (
	StepConfig = "config" // reading config.json after it changed
	StepIngest = "ingest" // ingesting a workspace's audit log
	StepImport = "import" // importing the running system's closure
	StepAttest = "attest" // publishing its running-config
)

// Steps lists every step.
var Steps = []string{StepConfig, StepIngest, StepImport, StepAttest}

// DefaultProfilesDir holds the NixOS system generations
// (system-N-link → store path).
const DefaultProfilesDir = "/nix/var/nix/profiles"

// Options configure a Follower. Zero durations take the defaults given.
type Options struct {
	// Logger receives what the follower does and every failure (nil
	// discards).
	Logger *slog.Logger
	// RunningSystem, if set, overrides the config's runningSystem.
	RunningSystem string
	// NoRunningSystem follows the workspaces only: the running system is
	// neither imported nor attested (the NixOS module's
	// attestRunningSystem = false).
	NoRunningSystem bool
	// ProfilesDir is where system-N-link generations are looked up
	// (default DefaultProfilesDir).
	ProfilesDir string
	// Nix is where closures are imported from (default the local Nix).
	Nix closure.Source
	// Debounce is the quiet time after a change before acting (200 ms).
	Debounce time.Duration
	// MaxWait bounds the wait of a burst of changes (1 s).
	MaxWait time.Duration
	// Poll is the polling fallback's period (1 s).
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the delay before a failed step is
	// retried (1 s, doubling up to 1 min).
	MinBackoff, MaxBackoff time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ProfilesDir == "" {
		o.ProfilesDir = DefaultProfilesDir
	}
	if o.Nix == nil {
		o.Nix = &closure.LocalNix{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Debounce, 200*time.Millisecond)
	def(&o.MaxWait, time.Second)
	def(&o.Poll, time.Second)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, time.Minute)
}

// StepStatus counts one step's outcomes.
type StepStatus struct {
	Successes   uint64    `json:"successes"`
	Failures    uint64    `json:"failures"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
}

// WorkspaceStatus is what the follower knows of one workspace.
type WorkspaceStatus struct {
	Path string `json:"path"`
	Host string `json:"host,omitempty"`
	Attr string `json:"attr,omitempty"`
	// Watch is "fsnotify" while notifications work, else "poll".
	Watch string `json:"watch"`
	// Lines and Snapshot are those of the last accepted snapshot.
	Lines      int64     `json:"lines"`
	Snapshot   string    `json:"snapshot,omitempty"`
	LastIngest time.Time `json:"lastIngest,omitzero"`
	Failures   uint64    `json:"failures"`
	// Tampered counts ingests refused because the log did not continue
	// the accepted snapshot (audit.ErrNotAppendOnly).
	Tampered uint64 `json:"tampered"`
	// Error is the current failure, cleared by the next success.
	Error     string    `json:"error,omitempty"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
}

// RunningStatus is what the follower knows of the running system.
type RunningStatus struct {
	// Path is the symlink followed; Target the store path it resolves to
	// ("" while it does not exist).
	Path   string `json:"path"`
	Target string `json:"target,omitempty"`
	// Attested is the root store path of the latest running-config,
	// RunningConfig its id, Workspace the workspace its configuration
	// came from and Unproven why it is unproven, if it is.
	Attested      string    `json:"attested,omitempty"`
	RunningConfig string    `json:"runningConfig,omitempty"`
	Workspace     string    `json:"workspace,omitempty"`
	Unproven      string    `json:"unproven,omitempty"`
	LastAttest    time.Time `json:"lastAttest,omitzero"`
	// LastCheck is when the follower last looked where the link leads.
	LastCheck time.Time `json:"lastCheck,omitzero"`
	Error     string    `json:"error,omitempty"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
}

// Status is a snapshot of the follower.
type Status struct {
	// Healthy is false while a workspace or the running system has a
	// current failure.
	Healthy       bool                  `json:"healthy"`
	Steps         map[string]StepStatus `json:"steps"`
	Workspaces    []WorkspaceStatus     `json:"workspaces"`
	RunningSystem RunningStatus         `json:"runningSystem"`
}

// Follower follows a node's workspaces and running system.
type Follower struct {
	n      *node.Node
	o      Options
	log    *slog.Logger
	signer *attest.Signer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	lockMu  sync.Mutex
	wsLocks map[string]*sync.Mutex // serialises ingests per workspace

	mu      sync.Mutex
	steps   map[string]*StepStatus
	ws      map[string]*wsWatcher
	order   []string // workspace paths in config order
	rs      *runningWatcher
	running RunningStatus
}

// Start starts following n's workspaces and running system as its
// config.json names them, and config.json itself, until ctx is done or
// Stop is called.
func Start(ctx context.Context, n *node.Node, o Options) (*Follower, error) {
	o.defaults()
	signer, err := attest.LoadSigner(filepath.Join(n.Dir, node.AttestKeyFile))
	if err != nil {
		return nil, err
	}
	f := &Follower{n: n, o: o, log: o.Logger.With("component", "follow"), signer: signer,
		wsLocks: map[string]*sync.Mutex{}, steps: map[string]*StepStatus{}, ws: map[string]*wsWatcher{}}
	for _, s := range Steps {
		f.steps[s] = &StepStatus{}
	}
	f.ctx, f.cancel = context.WithCancel(ctx)
	cfg, err := node.LoadConfig(n.Dir)
	if err != nil {
		f.cancel()
		return nil, err
	}
	f.apply(cfg)
	f.wg.Add(1)
	go f.watchConfig(f.ctx)
	return f, nil
}

// Stop stops every watcher and waits for the step in progress (its
// context is cancelled).
func (f *Follower) Stop() {
	f.cancel()
	f.wg.Wait()
}

// Status returns a snapshot of what the follower knows.
func (f *Follower) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Healthy: true, Steps: map[string]StepStatus{}, RunningSystem: f.running, Workspaces: []WorkspaceStatus{}}
	for k, v := range f.steps {
		st.Steps[k] = *v
	}
	for _, p := range f.order {
		w := f.ws[p].st
		st.Workspaces = append(st.Workspaces, w)
		if w.Error != "" {
			st.Healthy = false
		}
	}
	if st.RunningSystem.Error != "" {
		st.Healthy = false
	}
	return st
}

// record counts one outcome of step.
func (f *Follower) record(step string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.steps[step]
	if err == nil {
		s.Successes++
		s.LastSuccess = time.Now()
		return
	}
	s.Failures++
	s.LastFailure = time.Now()
	s.LastError = err.Error()
}

func (f *Follower) wsLock(path string) *sync.Mutex {
	f.lockMu.Lock()
	defer f.lockMu.Unlock()
	m := f.wsLocks[path]
	if m == nil {
		m = &sync.Mutex{}
		f.wsLocks[path] = m
	}
	return m
}

// apply starts and stops watchers to match cfg.
func (f *Follower) apply(cfg *node.Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return
	}
	want := map[string]node.WorkspaceConfig{}
	var order []string
	for _, w := range cfg.Workspaces {
		p := filepath.Clean(w.Path)
		if _, dup := want[p]; dup || !filepath.IsAbs(p) {
			continue
		}
		w.Path = p
		want[p] = w
		order = append(order, p)
	}
	changed := !slices.Equal(order, f.order)
	for p, w := range f.ws {
		nw, ok := want[p]
		if !ok {
			f.log.Info("workspace no longer followed", "workspace", p)
			w.cancel()
			delete(f.ws, p)
			continue
		}
		if nw != w.cfg {
			w.cfg, w.st.Host, w.st.Attr = nw, nw.Host, nw.Attr
			changed = true
		}
	}
	for _, p := range order {
		if _, ok := f.ws[p]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(f.ctx)
		w := &wsWatcher{f: f, cfg: want[p], cancel: cancel, st: WorkspaceStatus{Path: p, Host: want[p].Host, Attr: want[p].Attr, Watch: "poll"}}
		f.ws[p] = w
		f.log.Info("following workspace", "workspace", p)
		f.wg.Add(1)
		go w.run(ctx)
	}
	f.order = order
	rp := f.o.RunningSystem
	if rp == "" {
		rp = cfg.RunningSystemPath()
	}
	if f.o.NoRunningSystem {
		return
	}
	if f.rs == nil || f.rs.path != rp {
		if f.rs != nil {
			f.rs.cancel()
		}
		ctx, cancel := context.WithCancel(f.ctx)
		f.rs = &runningWatcher{f: f, path: rp, cancel: cancel, kick: make(chan struct{}, 1)}
		f.running = RunningStatus{Path: rp}
		f.log.Info("following the running system", "path", rp)
		f.wg.Add(1)
		go f.rs.run(ctx)
	} else if changed {
		select {
		case f.rs.kick <- struct{}{}:
		default:
		}
	}
}

// selectWorkspace picks the workspace the running system is built from:
// the only one configured, else the one whose host (default: the node
// name) is the node's name. With none it returns why.
func (f *Follower) selectWorkspace() (node.WorkspaceConfig, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.order) == 0 {
		return node.WorkspaceConfig{}, "no workspace is configured for this system"
	}
	if len(f.order) == 1 {
		return f.ws[f.order[0]].cfg, ""
	}
	name := f.n.Config.Name
	var match []node.WorkspaceConfig
	for _, p := range f.order {
		c := f.ws[p].cfg
		h := c.Host
		if h == "" {
			h = name
		}
		if h == name {
			match = append(match, c)
		}
	}
	switch len(match) {
	case 1:
		return match[0], ""
	case 0:
		return node.WorkspaceConfig{}, fmt.Sprintf("none of the %d configured workspaces is for host %s", len(f.order), name)
	default:
		var ps []string
		for _, m := range match {
			ps = append(ps, m.Path)
		}
		return node.WorkspaceConfig{}, fmt.Sprintf("%d configured workspaces are for host %s (%s): set --host on all but one", len(match), name, strings.Join(ps, ", "))
	}
}

// lastAttested returns the root store path, id and workspace of the
// latest running-config/v2 this node signed, so that a restarted daemon
// does not attest the same system again.
func (f *Follower) lastAttested(ctx context.Context) (root, id, ws, unproven string, err error) {
	recs, err := f.n.Attest.Search(attest.Query{PredicateType: attest.PredicateRunningConfigV2, Signer: f.signer.KeyID()})
	if err != nil || len(recs) == 0 {
		return "", "", "", "", err
	}
	last := recs[len(recs)-1]
	var p attest.RunningConfigV2Predicate
	if err := f.n.Predicate(ctx, last.ID, &p); err != nil {
		return "", "", "", "", err
	}
	if p.Configuration != nil {
		ws = p.Configuration.Workspace
	}
	return p.Closure.RootStorePath, last.ID, ws, p.Unproven, nil
}

// oneLine squeezes an error into one bounded line for a reason string.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// watchConfig follows config.json (replaced by rename when UpdateConfig
// writes it): fsnotify on the data directory plus polling; each change,
// debounced, starts and stops watchers. A config that does not load is
// logged and counted; the watchers keep the last good one.
func (f *Follower) watchConfig(ctx context.Context) {
	defer f.wg.Done()
	path := filepath.Join(f.n.Dir, node.ConfigFile)
	deb := NewDebouncer(f.o.Debounce, f.o.MaxWait)
	defer deb.Stop()
	poll := NewPoller(path, true)
	fw := newWatch(f.log)
	defer fw.close()
	fw.add(f.n.Dir)
	tick := time.NewTicker(f.o.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.events():
			if !ok {
				fw.broken()
				continue
			}
			if ev.Name == path {
				deb.Trigger()
			}
		case err, ok := <-fw.errors():
			if !ok {
				fw.broken()
				continue
			}
			f.log.Warn("file notifications failed; polling continues", "err", err)
		case <-tick.C:
			fw.add(f.n.Dir)
			if poll.Changed() {
				deb.Trigger()
			}
		case <-deb.C:
			cfg, err := node.LoadConfig(f.n.Dir)
			f.record(StepConfig, err)
			if err != nil {
				f.log.Error("config.json changed but does not load; keeping the last good one", "err", err)
				continue
			}
			f.apply(cfg)
		}
	}
}
