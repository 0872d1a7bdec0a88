package verify

import (
	"context"
	"testing"
)

func TestCheckNodeWithoutRunningConfig(t *testing.T) {
	a := openNode(t, initNodeDir(t, "alpha"))
	a.proposal(t, "a patch")
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := CheckNode(context.Background(), a.srv.URL, a.policy, NodeOptions{State: st})
	if len(r.Failures) != 0 || len(r.Uncertain) != 1 || r.Uncertain[0].Check != "running-config" {
		t.Fatalf("want only an uncertain running-config, got %+v / %+v", r.Failures, r.Uncertain)
	}
	if _, ok := r.Err().(*UncertainError); !ok {
		t.Fatalf("Err() = %v", r.Err())
	}
}
