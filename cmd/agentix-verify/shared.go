package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/verify"
)

// loadPolicy reads --policy (a usage error when missing or invalid).
func loadPolicy(cmd string) (*attest.Policy, error) {
	if a.policy == "" {
		return nil, &usageError{Msg: cmd + ": --policy TRUST is required"}
	}
	p, err := attest.LoadPolicy(a.policy)
	if err != nil {
		return nil, &usageError{Msg: err.Error()}
	}
	return p, nil
}

func policyFlag(c *cobra.Command) {
	c.Flags().StringVar(&a.policy, "policy", "", "trust policy file (logs, node keys, approvers, witnesses)")
}

// openState resolves and opens the auditor state directory.
func openState() (*verify.State, error) {
	dir, err := verify.ResolveStateDir(a.state)
	if err != nil {
		return nil, err
	}
	return verify.OpenState(dir)
}

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// emit prints the report (--json or the human summary) and turns its
// verdict into the command's error: *verifyFailed for a failure, a plain
// error (exit 3) when something could not be checked.
func emit(c *cobra.Command, r *verify.Report) error {
	out := c.OutOrStdout()
	if a.json {
		if err := r.WriteJSON(out); err != nil {
			return err
		}
	} else if err := r.WriteText(out); err != nil {
		return err
	}
	err := r.Err()
	var fe *verify.FailedError
	if errors.As(err, &fe) {
		return &verifyFailed{msg: err.Error()}
	}
	return err
}

func oneArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return &usageError{Msg: fmt.Sprintf("%s: want 1 argument (%s), got %d", cmd.Name(), name, len(args))}
		}
		return nil
	}
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return readAllStdin()
	}
	return os.ReadFile(path)
}
