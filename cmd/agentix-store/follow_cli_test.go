package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigWorkspaceAddRm(t *testing.T) {
	dir := initDir(t)
	ws := filepath.Join(t.TempDir(), "ws")
	if err := os.MkdirAll(filepath.Join(ws, ".agentix"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := t.TempDir()
	file := filepath.Join(plain, "f")
	os.WriteFile(file, nil, 0o644)
	missing := filepath.Join(plain, "missing")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing path", []string{missing}, missing},
		{"a file", []string{file}, "not a directory"},
		{"no .agentix", []string{plain}, "no .agentix directory"},
	} {
		r := run(t, dir, nil, append([]string{"config", "workspace-add"}, c.args...)...)
		if r.code != 2 || !strings.Contains(string(r.stderr), c.want) || !strings.Contains(string(r.stderr), "not an Agentix workspace") {
			t.Errorf("%s: exit %d, stderr %q: want usage error (2) naming %q", c.name, r.code, r.stderr, c.want)
		}
	}
	ok(t, dir, nil, "config", "workspace-add", ws, "--host", "alpha")
	if r := run(t, dir, nil, "config", "workspace-add", ws+"/"); r.code != 2 || !strings.Contains(string(r.stderr), "already configured") {
		t.Fatalf("duplicate workspace: exit %d %q", r.code, r.stderr)
	}
	var cfg struct {
		Workspaces []struct {
			Path, Host, Attr string
		} `json:"workspaces"`
		RunningSystem string `json:"runningSystem"`
	}
	if err := json.Unmarshal(ok(t, dir, nil, "config", "show"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Workspaces) != 1 || cfg.Workspaces[0].Path != ws || cfg.Workspaces[0].Host != "alpha" || cfg.RunningSystem != "/run/current-system" {
		t.Fatalf("config show: %+v", cfg)
	}
	if r := run(t, dir, nil, "config", "workspace-rm", plain); r.code != 2 || !strings.Contains(string(r.stderr), plain) {
		t.Fatalf("removing an unknown workspace: exit %d %q", r.code, r.stderr)
	}
	ok(t, dir, nil, "config", "workspace-rm", ws)
	cfg.Workspaces = nil
	json.Unmarshal(ok(t, dir, nil, "config", "show"), &cfg)
	if len(cfg.Workspaces) != 0 {
		t.Fatalf("after workspace-rm: %+v", cfg)
	}
}

// serveFollowing starts `serve` following a running-system path that does
// not exist, and returns its URL; it is stopped with SIGINT at the end.
func serveFollowing(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "--dir", dir, "serve", "--listen", "127.0.0.1:0", "--running-system", filepath.Join(t.TempDir(), "no-system"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrRE := regexp.MustCompile(`addr=(http://[0-9.:]+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon exited with %v after SIGINT", err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("daemon did not stop within 15s of SIGINT")
		}
	})
	select {
	case u := <-found:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not report its address")
	}
	return ""
}

// TestServeFollowsWorkspaceAddedWhileRunning: `config workspace-add` while
// `serve` runs; the workspace's first line is ingested within 2 s.
func TestServeFollowsWorkspaceAddedWhileRunning(t *testing.T) {
	dir := initDir(t)
	u := serveFollowing(t, dir)
	ws := sampleWorkspace(t)
	lines := logLines(t, ws)
	writeLog(t, ws, nil)
	ok(t, dir, nil, "config", "workspace-add", ws)
	lines1 := func() int64 {
		resp, err := http.Get(u + "/healthz?detail=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d struct {
			Status string
			Follow struct {
				Workspaces []struct {
					Path  string
					Lines int64
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		for _, w := range d.Follow.Workspaces {
			if w.Path == ws {
				return w.Lines
			}
		}
		return -1
	}
	// Followed at once (no restart)...
	for start := time.Now(); lines1() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatal("the workspace added while the daemon runs is not followed within 2 s")
		}
	}
	// ...and its first line ingested within 2 s.
	appendLog(t, ws, lines[0])
	start := time.Now()
	for lines1() != 1 {
		if time.Since(start) > 2*time.Second {
			t.Fatal("the first line was not ingested within 2 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("first line ingested %v after it was appended", time.Since(start))
}
