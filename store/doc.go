// Package store is the node's content-addressed block store.
//
// Blocks live in the node's badger database keyed by multihash (package
// internal/kv). On top of the blocks, store adds and reads UnixFS files with
// Kubo-identical CIDs, imports and exports CAR files, keeps pins and collects
// garbage. It knows nothing about Agentix or Nix.
package store
