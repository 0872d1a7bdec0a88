package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ExitUsage is the exit status of a usage error.
const ExitUsage = 2

// UsageError marks an error in how the command was called.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Setup makes root and every command under it report flag errors as usage
// errors, and makes every command that only groups others (root included)
// refuse an unknown subcommand with a usage error instead of printing its
// help and exiting 0, as cobra does for a command without a Run. Called with
// no subcommand, a group prints its usage to stderr and returns a usage
// error, as the go command does. Call it once all commands are added.
func Setup(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &UsageError{Msg: err.Error()} })
	refuseUnknown(root)
}

func refuseUnknown(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknown(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return Usagef("%s: unknown command %q (see %s --help)", cmd.CommandPath(), args[0], cmd.CommandPath())
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cmd.SetOut(cmd.ErrOrStderr())
		cmd.Usage()
		return Usagef("%s: which command? (see above)", cmd.CommandPath())
	}
}

// Renamed keeps a flag's old spelling working for one release: old sets
// the same value as the flag now named name, is hidden from help, and using
// it prints a deprecation notice naming the new spelling. Call it after
// defining name.
func Renamed(fs *pflag.FlagSet, old, name string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("cli.Renamed: no flag --" + name)
	}
	fs.Var(f.Value, old, f.Usage)
	fs.MarkDeprecated(old, "use --"+name+" (the same flag name now means the same thing in every agentix command)")
}
