package closure

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LocalNix is the Source of the Nix installation on this machine: path infos
// from `nix path-info --json --recursive`; NARs serialised in-process from
// the store (DumpNAR: read-only, no symlink followed), or streamed from
// `nix-store --dump` with NixStoreDump. Either way Import checks every NAR
// against the narHash and narSize that `nix path-info` reported.
type LocalNix struct {
	// BinDir holds the nix and nix-store programs ("" = look them up in
	// $PATH).
	BinDir string
	// Dir is the store directory (DefaultStoreDir if "").
	Dir string
	// Env, if not nil, is the environment of the Nix processes.
	Env []string
	// ExtraArgs are passed to `nix path-info` (e.g. "--store", "…").
	ExtraArgs []string
	// RealDir is the directory the store paths are in on this machine
	// (Dir if ""), for a store whose logical directory is elsewhere (a
	// chroot store).
	RealDir string
	// NixStoreDump streams NARs from one `nix-store --dump` process per
	// path instead of serialising them in-process.
	NixStoreDump bool
}

func (l *LocalNix) realDir() string {
	if l.RealDir != "" {
		return l.RealDir
	}
	return l.StoreDir()
}

// StoreDir implements Source.
func (l *LocalNix) StoreDir() string {
	if l.Dir == "" {
		return DefaultStoreDir
	}
	return l.Dir
}

func (l *LocalNix) bin(name string) string {
	if l.BinDir == "" {
		return name
	}
	return filepath.Join(l.BinDir, name)
}

func (l *LocalNix) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, l.bin(name), args...)
	if l.Env != nil {
		cmd.Env = l.Env
	}
	return cmd
}

// Closure implements Source.
func (l *LocalNix) Closure(ctx context.Context, root string) ([]PathInfo, error) {
	args := append([]string{"--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive"}, l.ExtraArgs...)
	args = append(args, "--", root)
	cmd := l.command(ctx, "nix", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: nix path-info --json --recursive %s: %v: %s", ErrSourceFailed, root, err, strings.TrimSpace(stderr.String()))
	}
	return ParsePathInfoJSON(out, l.StoreDir())
}

// NAR implements Source: DumpNAR of the path, written by a goroutine as it
// is read; Close stops it and reports its *DumpError. With NixStoreDump, the
// stdout of `nix-store --dump PATH`; Close waits for the process and reports
// a non-zero exit with its stderr.
func (l *LocalNix) NAR(ctx context.Context, pi PathInfo) (io.ReadCloser, error) {
	if !l.NixStoreDump {
		dir, sp := l.realDir(), l.realPath(pi.Path)
		return narPipe(func(w io.Writer) error { return DumpNAR(w, dir, sp) }), nil
	}
	cmd := l.command(ctx, "nix-store", "--dump", pi.Path)
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	// Our own pipe, widened to 1 MiB (Linux; elsewhere the default stays):
	// nix-store writes and we read in 1 MiB pieces, not 64 KiB ones.
	out, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	widenPipe(out)
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("%w: nix-store --dump %s: %v", ErrSourceFailed, pi.Path, err)
	}
	return &cmdReader{r: out, cmd: cmd, stderr: stderr, what: "nix-store --dump " + pi.Path}, nil
}

type cmdReader struct {
	r      io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	what   string
	closed bool
	eof    bool
}

func (c *cmdReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

func (c *cmdReader) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if !c.eof {
		// The reader gave up early: stop the process, its exit status
		// says nothing more.
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		c.r.Close()
		return nil
	}
	err := c.cmd.Wait()
	c.r.Close()
	if err != nil {
		return fmt.Errorf("%w: %s: %v: %s", ErrSourceFailed, c.what, err, strings.TrimSpace(c.stderr.String()))
	}
	return nil
}

// realPath is store path p (in StoreDir) in RealDir.
func (l *LocalNix) realPath(p string) string {
	return l.realDir() + "/" + filepath.Base(p)
}

// WriteNAR writes the NAR of pi to w in the caller's goroutine (DumpNAR), or
// copies `nix-store --dump` to w with NixStoreDump. Import uses it for small
// NARs, which it buffers whole.
func (l *LocalNix) WriteNAR(ctx context.Context, pi PathInfo, w io.Writer) error {
	if !l.NixStoreDump {
		return DumpNAR(w, l.realDir(), l.realPath(pi.Path))
	}
	rc, err := l.NAR(ctx, pi)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}
