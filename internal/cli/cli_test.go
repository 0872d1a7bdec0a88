package cli

import (
	"bytes"
	"errors"
	"testing"

	"github.com/spf13/cobra"
)

func newTree() *cobra.Command {
	root := &cobra.Command{Use: "tool", SilenceErrors: true, SilenceUsage: true}
	group := &cobra.Command{Use: "config"}
	leaf := &cobra.Command{Use: "show", RunE: func(*cobra.Command, []string) error { return nil }}
	leaf.Flags().Bool("all", false, "")
	group.AddCommand(leaf)
	root.AddCommand(group)
	Setup(root)
	return root
}

func TestSetup(t *testing.T) {
	for _, c := range []struct {
		args  []string
		usage bool
	}{
		{[]string{"config", "show"}, false},
		{[]string{"config", "bogus"}, true},
		{[]string{"config"}, true},
		{[]string{"bogus"}, true},
		{[]string{}, true},
		{[]string{"config", "show", "--nope"}, true},
	} {
		root := newTree()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(c.args)
		err := root.Execute()
		var ue *UsageError
		if got := errors.As(err, &ue); got != c.usage {
			t.Errorf("%q: err = %v, usage error %v, want %v", c.args, err, got, c.usage)
		}
	}
}

func TestRenamed(t *testing.T) {
	for _, args := range [][]string{{"--output", "x"}, {"-o", "x"}, {"--out", "x"}} {
		var out string
		var stderr bytes.Buffer
		c := &cobra.Command{Use: "gen", RunE: func(*cobra.Command, []string) error { return nil }}
		c.Flags().StringVarP(&out, "output", "o", "", "where")
		Renamed(c.Flags(), "out", "output")
		c.SetErr(&stderr)
		c.SetOut(&stderr)
		c.SetArgs(args)
		if err := c.Execute(); err != nil || out != "x" {
			t.Fatalf("%q: err %v, output %q", args, err, out)
		}
		if deprecated := bytes.Contains(stderr.Bytes(), []byte("use --output")); deprecated != (args[0] == "--out") {
			t.Errorf("%q: deprecation notice %v, stderr %q", args, deprecated, stderr.String())
		}
		if c.Flags().Lookup("out").Hidden != true {
			t.Errorf("--out is shown in help")
		}
	}
}
