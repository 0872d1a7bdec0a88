package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"io"
	"os"
	"strings"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/internal/api"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

// app holds the global flags.
type app struct {
	dirFlag string
	json    bool
	node    string
	keyFile string
}

var a = &app{}

// usageError marks errors in how the command was called (exit status 2).
type usageError = cli.UsageError

func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "agentix-store",
		Short:         "Content-addressed store and transparency log for Agentix-managed NixOS nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dirFlag, "dir", "", "data directory (default $AGENTIX_STORE_DIR, else $XDG_DATA_HOME/agentix-store)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print results as JSON")
	root.PersistentFlags().StringVar(&a.node, "node", "", "reach a (remote) daemon at this URL instead of the data dir: writes need --sign-key or $AGENTIX_STORE_TOKEN")
	root.PersistentFlags().StringVar(&a.keyFile, "sign-key", "", "with --node: sign writes with this operator key (PEM), trusted by the node's trust policy")
	for _, add := range commands {
		root.AddCommand(add())
	}
	cli.Setup(root)
	return root
}

// commands is filled by each cmd_*.go file's init, so files for new
// capabilities don't need to edit this one.
var commands []func() *cobra.Command

func register(f func() *cobra.Command) { commands = append(commands, f) }

// dir resolves the data directory.
func (a *app) dir() (string, error) { return node.ResolveDir(a.dirFlag) }

// ErrDaemonHolds: a command that must work on the data directory itself
// (init) found a daemon running on it.
var ErrDaemonHolds = errors.New("a daemon holds the data directory")

// refuseWhileDaemon fails when a daemon answers for dir: what works on the
// data directory directly (not through the daemon's API), so the daemon
// must be stopped first. Every other command goes through the daemon.
func refuseWhileDaemon(ctx context.Context, dir, what string) error {
	d, err := node.DaemonClient(dir)
	if err != nil {
		return nil
	}
	if cl := (&api.Client{Base: d.Base}); cl.Healthy(ctx) {
		return fmt.Errorf("%s: %w %s (the daemon at %s): %s works on the directory directly, not through the daemon's API; stop the daemon and run it again",
			what, ErrDaemonHolds, dir, d.Base, what)
	}
	return nil
}

// backend opens the node in this process or, when a daemon holds the data
// directory, reaches the node through the daemon's API (the address it
// wrote to <dir>/daemon.addr, and the bearer token in <dir>/token).
func (a *app) backend(ctx context.Context) (api.Backend, error) {
	if a.node != "" {
		cl := &api.Client{Base: strings.TrimSuffix(a.node, "/"), Token: os.Getenv("AGENTIX_STORE_TOKEN")}
		if a.keyFile != "" {
			s, err := attest.LoadSigner(a.keyFile)
			if err != nil {
				return nil, err
			}
			cl.Signer = s
		}
		if !cl.Healthy(ctx) {
			return nil, fmt.Errorf("no daemon answers at %s", a.node)
		}
		return cl, nil
	}
	dir, err := a.dir()
	if err != nil {
		return nil, err
	}
	n, err := node.Open(dir, node.OpenOptions{})
	if err == nil {
		return api.Local{N: n}, nil
	}
	var le *kv.LockedError
	if !errors.As(err, &le) {
		return nil, err
	}
	c, cerr := node.DaemonClient(dir)
	if cerr != nil {
		return nil, fmt.Errorf("%w; and no daemon to reach: %v", err, cerr)
	}
	cl := &api.Client{Base: c.Base, Token: c.Token}
	if !cl.Healthy(ctx) {
		return nil, fmt.Errorf("%w; and the daemon at %s does not answer", err, c.Base)
	}
	return cl, nil
}

// emit prints v as JSON with --json, else calls human.
func (a *app) emit(w io.Writer, v any, human func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(w)
	return nil
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %d argument(s), got %d (see --help)", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: want at least %d argument(s) (see --help)", cmd.CommandPath(), n)
		}
		return nil
	}
}

// openInput opens a file argument, "-" meaning stdin.
func openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory", name)
	}
	return f, st.Size(), nil
}

// cidArg parses a CID argument; a malformed one is a usage error.
func cidArg(s string) (cid.Cid, error) {
	c, err := store.ParseCID(s)
	if err != nil {
		return cid.Undef, usagef("%v", err)
	}
	return c, nil
}

// onBackend makes a command body that runs with the node's backend (opened
// in-process, or reached through its daemon) after the arguments are
// checked, and closes it afterwards.
func onBackend(fn func(cmd *cobra.Command, args []string, b api.Backend) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		b, err := a.backend(cmd.Context())
		if err != nil {
			return err
		}
		defer b.Close()
		return fn(cmd, args, b)
	}
}

// cidArgs checks that there are n arguments and that each is a CID, before
// anything is opened.
func cidArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := exactArgs(n)(cmd, args); err != nil {
			return err
		}
		for _, s := range args {
			if _, err := cidArg(s); err != nil {
				return err
			}
		}
		return nil
	}
}
