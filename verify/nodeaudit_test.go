package verify

import (
	"context"
	"errors"
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
	// Its running-config/v1 names no configuration source: everything is
	// proven but which configuration the node runs.
	if !provenButConfiguration(r) {
		t.Fatalf("healthy node not proven but for its configuration:\n%s", dump(t, r))
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

// provenButConfiguration reports whether r proves everything except the
// configuration of a running-config/v1 (one configuration-unproven
// uncertainty, no failure).
func provenButConfiguration(r *Report) bool {
	return len(r.Failures) == 0 && len(r.Uncertain) == 1 && r.Uncertain[0].Reason == "configuration-unproven" &&
		errors.Is(r.Uncertain[0].Err, ErrConfigUnproven) && errors.Is(r.Err(), ErrUnavailable)
}
