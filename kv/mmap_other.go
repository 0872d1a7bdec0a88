//go:build !linux

package kv

import "github.com/dgraph-io/badger/v4"

// ReleaseLogPages is a no-op outside Linux; see the Linux version.
func ReleaseLogPages(db *badger.DB) error { return nil }
