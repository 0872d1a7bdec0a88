package clitest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestBinaries(t *testing.T) {
	s, v, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{s, v} {
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		if !strings.Contains(string(out), "Usage") {
			t.Errorf("%s --help: %q", bin, out)
		}
	}
	s2, v2, _ := Binaries()
	if s2 != s || v2 != v {
		t.Errorf("second call built again: %s %s", s2, v2)
	}
}
