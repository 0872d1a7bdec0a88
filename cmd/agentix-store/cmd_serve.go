package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/internal/daemon"
	"github.com/agentix/agentix-store/internal/follow"
	"github.com/agentix/agentix-store/internal/node"
	"github.com/spf13/cobra"
)

func init() { register(newServeCmd) }

func newServeCmd() *cobra.Command {
	var listen, runningSystem string
	var verbose, noFollow, noRunning bool
	c := &cobra.Command{
		Use:   "serve [--listen ADDR] [--running-system PATH | --no-running-system] [--no-follow]",
		Short: "Run the node daemon (initialises the data directory on first run); it follows the node: ingests the configured workspaces as Agentix appends, attests the running system each time it changes",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
			if a.json {
				h = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
			}
			logger := slog.New(h)
			logger.Debug("memory limit", "bytes", daemon.SetMemoryLimit())
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if runningSystem != "" && noRunning {
				return usagef("--running-system and --no-running-system: choose one")
			}
			if runningSystem != "" {
				if runningSystem, err = filepath.Abs(runningSystem); err != nil {
					return usagef("--running-system: %v", err)
				}
			}
			metrics := daemon.NewMetrics()
			n, err := node.Open(dir, node.OpenOptions{Init: true, Logger: logger, OnBatch: metrics.OnBatch})
			if err != nil {
				return err
			}
			defer n.Close()
			if listen == "" {
				listen = n.Config.Listen
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			addrFile := filepath.Join(n.Dir, node.DaemonAddrFile)
			if err := os.WriteFile(addrFile, []byte("http://"+l.Addr().String()+"\n"), 0o644); err != nil {
				return err
			}
			defer os.Remove(addrFile)
			logger.Info("serving", "dir", n.Dir, "addr", "http://"+l.Addr().String(), "node", n.Config.Name, "log", n.Config.Origin)
			err = daemon.Serve(cmd.Context(), n, l, daemon.Options{Logger: logger, Metrics: metrics,
				Follow: !noFollow, FollowOptions: follow.Options{RunningSystem: runningSystem, NoRunningSystem: noRunning}})
			logger.Info("stopped")
			return err
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "listen address (default from config: 127.0.0.1:7171)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every request")
	c.Flags().StringVar(&runningSystem, "running-system", "", "symlink to the running NixOS system to follow (default from config runningSystem: "+node.DefaultRunningSystem+")")
	c.Flags().BoolVar(&noFollow, "no-follow", false, "follow neither workspaces nor the running system")
	c.Flags().BoolVar(&noRunning, "no-running-system", false, "follow the workspaces, but neither import nor attest the running system")
	return c
}
