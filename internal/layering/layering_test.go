package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/agentix/agentix-store"

// rank is each package's layer: a package imports only packages of a
// lower rank (or its own subpackages).
func rank(pkg string) (int, bool) {
	p := strings.TrimPrefix(pkg, module+"/")
	top, _, _ := strings.Cut(p, "/")
	switch top {
	case "kv", "schemas":
		return 0, true
	case "store", "tlog":
		return 1, true
	case "attest":
		return 2, true
	case "audit", "closure":
		return 3, true
	case "chain":
		return 4, true
	case "verify":
		return 5, true
	case "internal":
		return 6, true
	case "cmd", "e2e":
		return 7, true
	}
	return 0, false
}

// TestLayering reads every package's (non-test) imports from `go list`
// and checks that they go downward and that no public package imports
// internal/.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg, imports := f[0], f[1:]
		pr, ok := rank(pkg)
		if !ok {
			t.Errorf("%s: no layer for this package; add it to rank (and to DESIGN.md's dependency line)", pkg)
			continue
		}
		n++
		public := !strings.HasPrefix(pkg, module+"/internal/") && !strings.HasPrefix(pkg, module+"/cmd/") && !strings.HasPrefix(pkg, module+"/e2e")
		for _, imp := range imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if public && strings.Contains(strings.TrimPrefix(imp, module), "/internal/") && !strings.HasPrefix(imp, pkg+"/") {
				t.Errorf("%s imports %s: a public package must not depend on internal/", pkg, imp)
			}
			ir, _ := rank(imp)
			sameTree := strings.HasPrefix(imp, pkg+"/") || strings.HasPrefix(pkg, imp+"/")
			topP, _, _ := strings.Cut(strings.TrimPrefix(pkg, module+"/"), "/")
			topI, _, _ := strings.Cut(strings.TrimPrefix(imp, module+"/"), "/")
			if !sameTree && topP != topI && ir >= pr {
				t.Errorf("%s (layer %d) imports %s (layer %d): dependencies go downward only", pkg, pr, imp, ir)
			}
		}
	}
	if n < 20 {
		t.Fatalf("go list named %d packages; want the whole module", n)
	}
}
