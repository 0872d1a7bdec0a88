// Package log is the node's append-only RFC 6962 transparency log.
//
// It will sequence entries with group commit, store entries, hash tiles and
// checkpoints in the node's badger database, sign checkpoints as C2SP signed
// notes, serve them per C2SP tlog-tiles, and witness peers' checkpoints per
// C2SP tlog-witness and tlog-cosignature. It knows nothing about Agentix or Nix.
package log
