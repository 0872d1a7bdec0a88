package nixtest

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Config is the NIX_CONFIG that lets Nix build offline as root without
// build users or a sandbox.
const Config = "experimental-features = nix-command\nsandbox = false\nbuild-users-group =\nsubstituters =\n"

// Nix runs the Nix commands found in $PATH.
type Nix struct {
	tb      testing.TB
	Version string
}

// Require returns a Nix for tb, or skips (fails under CI) when Nix is
// missing. It sets NIX_CONFIG for the rest of the test.
func Require(tb testing.TB) *Nix {
	tb.Helper()
	for _, prog := range []string{"nix", "nix-store", "nix-build"} {
		if _, err := exec.LookPath(prog); err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("%s not found but CI is set: install nix-bin (see .ci/run): %v", prog, err)
			}
			tb.Skipf("%s not installed (apt-get install nix-bin); skipping real-Nix test", prog)
		}
	}
	tb.Setenv("NIX_CONFIG", Config)
	n := &Nix{tb: tb}
	n.Version = strings.TrimSpace(n.Run("nix", "--version"))
	return n
}

// For returns n reporting to tb (a subtest or sub-benchmark).
func (n *Nix) For(tb testing.TB) *Nix { return &Nix{tb: tb, Version: n.Version} }

// Run runs a command and returns its stdout; a failure fails the test.
func (n *Nix) Run(prog string, args ...string) string {
	n.tb.Helper()
	out, err := n.Try(prog, args...)
	if err != nil {
		n.tb.Fatal(err)
	}
	return out
}

// Try runs a command and returns its stdout, or an error carrying stderr.
func (n *Nix) Try(prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Drv is one derivation of a test closure: a shell script (run by /bin/sh
// with an empty PATH, so use absolute /bin tools) that creates $out. Deps
// name earlier Drvs whose outputs the script may refer to as ${name}.
type Drv struct {
	Name   string
	Script string
}

// Build builds drvs (later ones may use ${earlier.Name}) with nix-build and
// returns the output store path of each, in order.
func (n *Nix) Build(drvs ...Drv) []string {
	n.tb.Helper()
	var b strings.Builder
	b.WriteString("let\n")
	for _, d := range drvs {
		fmt.Fprintf(&b, "  %s = builtins.derivation { name = %q; builder = \"/bin/sh\"; system = builtins.currentSystem; args = [ \"-c\" %s ]; };\n",
			d.Name, d.Name, nixString(d.Script))
	}
	b.WriteString("in [")
	for _, d := range drvs {
		b.WriteString(" " + d.Name)
	}
	b.WriteString(" ]\n")
	f := filepath.Join(n.tb.TempDir(), "closure.nix")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		n.tb.Fatal(err)
	}
	out := strings.Fields(n.Run("nix-build", "--no-out-link", "--max-jobs", "4", f))
	if len(out) != len(drvs) {
		n.tb.Fatalf("nix-build printed %d paths for %d derivations: %q", len(out), len(drvs), out)
	}
	return out
}

// nixString quotes s as a Nix string literal, keeping ${…} interpolations.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// AddFixed adds the tree at dir to the store with
// `nix-store --add-fixed --recursive sha256` and returns its store path.
func (n *Nix) AddFixed(dir string) string {
	n.tb.Helper()
	return strings.TrimSpace(n.Run("nix-store", "--add-fixed", "--recursive", "sha256", dir))
}

// Dump returns the NAR of a store path (for small paths only).
func (n *Nix) Dump(path string) []byte {
	n.tb.Helper()
	return []byte(n.Run("nix-store", "--dump", path))
}

// PathInfoJSON returns `nix path-info --json --recursive path`.
func (n *Nix) PathInfoJSON(path string) []byte {
	n.tb.Helper()
	return []byte(n.Run("nix", "path-info", "--json", "--recursive", path))
}

// Packages builds a closure shaped like a system's: count small packages,
// each with a bin/ and a share/ file of pseudo-random bytes (together
// between minKB and maxKB KiB, sizes drawn from seed), and a top path whose
// file refers to every package. It returns the packages' store paths and
// the top path last. salt makes the derivations differ (a package whose
// index is in vary gets "salt-changed" instead, so two closures can differ
// by a few paths). The paths stay in the Nix store, so a second call with
// the same arguments builds nothing: Nix finds them valid.
func (n *Nix) Packages(count, minKB, maxKB int, seed int64, salt string, vary ...int) []string {
	n.tb.Helper()
	r := rand.New(rand.NewSource(seed))
	changed := map[int]bool{}
	for _, i := range vary {
		changed[i] = true
	}
	drvs := make([]Drv, 0, count+1)
	var refs strings.Builder
	for i := range count {
		kb := minKB + r.Intn(maxKB-minKB+1)
		bin := 1 + r.Intn(kb)
		s := salt
		if changed[i] {
			s += "-changed"
		}
		name := fmt.Sprintf("pkg%04d", i)
		drvs = append(drvs, Drv{Name: name, Script: fmt.Sprintf(
			"/bin/mkdir -p $out/bin $out/share/%[1]s; /usr/bin/head -c %[2]d /dev/urandom > $out/bin/%[1]s; /usr/bin/head -c %[3]d /dev/urandom > $out/share/%[1]s/data; echo %[4]s >> $out/share/%[1]s/data",
			name, bin<<10, (kb-bin)<<10, s)})
		fmt.Fprintf(&refs, " ${%s}", name)
	}
	drvs = append(drvs, Drv{Name: "top", Script: "/bin/mkdir -p $out; echo" + refs.String() + " > $out/refs; echo " + salt + " >> $out/refs"})
	return n.Build(drvs...)
}
