package clitest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	once          sync.Once
	storeBin      string
	verifyBin     string
	errBuild      error
	moduleRootErr = fmt.Errorf("clitest: no go.mod above the working directory")
)

// Binaries returns the paths of agentix-store and agentix-verify built from
// the module's current source (see the package documentation).
func Binaries() (store, verify string, err error) {
	once.Do(func() { storeBin, verifyBin, errBuild = build() })
	return storeBin, verifyBin, errBuild
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", moduleRootErr
		}
		dir = parent
	}
}

// digest hashes every file of the module that a build can read: Go
// source, go.mod, go.sum and the files packages embed (schemas, say), so
// that any edit means a new build. Hidden directories (.git) and bin/ are
// left out.
func digest(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s\x00", rel)
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		h.Write([]byte{0})
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16], err
}

func build() (string, string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	d, err := digest(root)
	if err != nil {
		return "", "", fmt.Errorf("clitest: hash the source: %w", err)
	}
	dir := filepath.Join(os.TempDir(), "agentix-clitest-"+d)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	store, verify := filepath.Join(dir, "agentix-store"), filepath.Join(dir, "agentix-verify")
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", "", fmt.Errorf("clitest: lock %s: %w", dir, err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return store, verify, nil
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/agentix-store", "./cmd/agentix-verify")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("clitest: go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, ".done"), nil, 0o600); err != nil {
		return "", "", err
	}
	return store, verify, nil
}
