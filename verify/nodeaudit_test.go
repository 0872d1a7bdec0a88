package verify

import (
	"context"
	"strings"
	"testing"
)

// checkNode audits tn with a fresh auditor state.
func checkNode(t testing.TB, tn *testNode) *Report {
	t.Helper()
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return CheckNode(context.Background(), tn.srv.URL, tn.policy, NodeOptions{State: st, TempDir: t.TempDir()})
}

func dump(t testing.TB, r *Report) string {
	t.Helper()
	var b strings.Builder
	_ = r.WriteText(&b)
	return b.String()
}

func TestCheckNodeHealthy(t *testing.T) {
	tn, _ := healthyNode(t)
	r := checkNode(t, tn)
	if !r.OK || r.Err() != nil {
		t.Fatalf("healthy node not proven:\n%s", dump(t, r))
	}
	var root, boundary bool
	for _, p := range r.Proven {
		root = root || strings.Contains(p, "recomputed from the raw bytes")
		boundary = boundary || strings.Contains(p, "safety boundary of "+wsName+" held")
	}
	if !root || !boundary {
		t.Fatalf("report lacks the recomputed root (%v) or boundary (%v):\n%s", root, boundary, dump(t, r))
	}
}
