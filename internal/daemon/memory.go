package daemon

import (
	"os"
	"runtime/debug"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit
// (runtime/debug.SetMemoryLimit) that `agentix-store serve` runs with unless
// GOMEMLIMIT is set. The live heap of a daemon under 256 concurrent
// publishers is about 80-100 MiB (badger's memtables and table builders,
// caches, requests in flight); without a limit the collector lets garbage
// grow to twice that, and the process's resident set, mapped files
// included, past 500 MiB. With it, the collector works harder as the heap
// nears the limit, and the daemon stays within a 256 MiB ceiling (systemd
// MemoryMax in the NixOS module), badger's mapped files included (about
// 90-130 MiB under that load; 160 MiB here measured 264 MiB peak, 128 MiB
// 184 MiB). The price is collector CPU under heavy write load. It is soft:
// a heap that truly needs more gets it.
const DefaultMemoryLimit = 128 << 20

// SetMemoryLimit applies DefaultMemoryLimit unless GOMEMLIMIT is set, and
// returns the limit in force.
func SetMemoryLimit() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
	return debug.SetMemoryLimit(-1)
}
