//go:build !linux

package kv

// freeBytes is unknown outside Linux: writes are admitted without a check.
func freeBytes(dir string) (int64, bool) { return 0, false }

// trimLogHoles is a no-op outside Linux.
func trimLogHoles(dir string) error { return nil }

// memLogBytes is unknown outside Linux.
func memLogBytes(dir string) int64 { return 0 }
