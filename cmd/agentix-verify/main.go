package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/agentix/agentix-store/internal/cli"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = cli.ExitUsage
	exitUncertain = 3
)

// verifyFailed marks a finding: something was checked and did not hold.
type verifyFailed struct{ msg string }

func (e *verifyFailed) Error() string { return e.msg }

// usageError marks errors in how the command was called.
type usageError = cli.UsageError

type app struct {
	json   bool
	state  string
	policy string
}

var a = &app{}

var commands []func() *cobra.Command

func register(f func() *cobra.Command) { commands = append(commands, f) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "agentix-verify",
		Short:         "Check an agentix-store node's claims from outside, with nothing but a trust policy",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print the report as JSON")
	root.PersistentFlags().StringVar(&a.state, "state", "", "auditor state directory (default $AGENTIX_VERIFY_STATE, else $XDG_STATE_HOME/agentix-verify, else ~/.local/state/agentix-verify)")
	for _, f := range commands {
		root.AddCommand(f())
	}
	cli.Setup(root)
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "agentix-verify: %v\n", err)
	var ue *usageError
	var vf *verifyFailed
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &vf):
		return exitFailed
	default:
		return exitUncertain
	}
}
