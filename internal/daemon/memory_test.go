package daemon

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestSetMemoryLimit: serve runs with DefaultMemoryLimit unless GOMEMLIMIT
// says otherwise (without a limit the daemon's RSS under 256 publishers
// went past 500 MiB: garbage grew to twice the live heap).
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	cases := []struct {
		name string
		env  string // "" : unset
		set  int64  // the limit the runtime took from GOMEMLIMIT at start
		want int64
	}{
		{"default", "", math.MaxInt64, DefaultMemoryLimit},
		{"GOMEMLIMIT wins", "1GiB", 1 << 30, 1 << 30},
		{"GOMEMLIMIT=off wins", "off", math.MaxInt64, math.MaxInt64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("GOMEMLIMIT", tc.env)
			} else {
				t.Setenv("GOMEMLIMIT", "")
				unsetenv(t, "GOMEMLIMIT")
			}
			debug.SetMemoryLimit(tc.set)
			if got := SetMemoryLimit(); got != tc.want {
				t.Fatalf("limit %d, want %d", got, tc.want)
			}
		})
	}
}

func unsetenv(t *testing.T, k string) {
	t.Helper()
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}
