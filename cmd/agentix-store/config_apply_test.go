package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/internal/cli"
)

// TestParseConfigOverrideStrict: `config apply` input (from the NixOS
// module, i.e. outside) is read with exact member names; a case variant, a
// repeated member, an unknown nested member or a relative or repeated
// workspace path is a usage error naming what is wrong.
func TestParseConfigOverrideStrict(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"case variant", `{"Listen": "127.0.0.1:1"}`, "Listen"},
		{"repeated member", `{"listen": "a:1", "listen": "b:2"}`, "listen"},
		{"unknown workspace member", `{"workspaces": [{"path": "/ws", "hots": "x"}]}`, "hots"},
		{"relative workspace", `{"workspaces": [{"path": "ws"}]}`, `"ws"`},
		{"workspace twice", `{"workspaces": [{"path": "/ws"}, {"path": "/ws/"}]}`, "/ws is listed twice"},
		{"relative running system", `{"runningSystem": "run/current-system"}`, "run/current-system"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseConfigOverride("in.json", []byte(c.in))
			var ue *cli.UsageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "in.json") {
				t.Fatalf("%s: err %v, want a usage error naming in.json and %q", c.in, err, c.want)
			}
		})
	}
	over, err := parseConfigOverride("in.json", []byte(`{"workspaces": [{"path": "/a/ws/", "host": "alpha", "attr": "x"}], "runningSystem": "/run/current-system"}`))
	if err != nil || len(*over.Workspaces) != 1 || (*over.Workspaces)[0].Path != "/a/ws" || (*over.Workspaces)[0].Host != "alpha" || *over.RunningSystem != "/run/current-system" {
		t.Fatalf("valid input: %+v, %v", over, err)
	}
}

func FuzzParseConfigOverride(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"listen": "127.0.0.1:7171", "chunker": "size-262144", "sync_writes": true}`,
		`{"workspaces": [{"path": "/ws", "host": "h", "attr": "a"}], "runningSystem": "/run/current-system"}`,
		`{"Listen": "x"}`, `{"listen": "a", "listen": "b"}`, `{"peers": [{"key": "garbage"}]}`, `[`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		over, err := parseConfigOverride("fuzz", b)
		if err != nil {
			var ue *cli.UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("not a usage error: %v", err)
			}
			return
		}
		if over.Workspaces != nil {
			for _, w := range *over.Workspaces {
				if !strings.HasPrefix(w.Path, "/") {
					t.Fatalf("accepted a relative workspace path %q", w.Path)
				}
			}
		}
	})
}
