// Package kv opens the node's single badger/v4 database: it is the one
// storage seam of the store, the log and the records built on them.
//
// Every persistent part of a node (the block store, pins, the transparency
// log, attestation indexes) lives in one badger database under
// <data dir>/badger, each in its own key space. store.New, tlog.Open,
// attest.NewIndex, audit.NewIngester and closure's functions take the
// *badger.DB that [Open] returns, so an outside program opens a store or a
// log with this package and theirs alone. Package kv owns the options
// that database is opened with and turns badger's directory-lock failure into
// a typed error, [ErrLocked], that names the data directory.
//
// Key spaces (the first bytes of every key) are allocated here so that two
// packages never collide:
//
//	"b/"  blocks, keyed by multihash (package store)
//	"p/"  pins (package store)
//	"l/"  transparency log (package tlog)
//	"w/"  witness state (package tlog)
//	"a/"  attestation indexes (package attest)
//	"x/"  audit-log ingest state (package audit)
//	"c/"  closure indexes (package closure)
//	"q/"  pins in progress: DAGs being fetched from peers (package store)
//	"n/"  seen signed-request nonces, with a TTL (the node's API)
//
// Large blocks are not stored in badger: package store appends them to pack
// files in <data dir>/packs ([PacksDir]) and keeps only their location under
// "b/".
//
// Every write path claims space first ([Claim]): below a free-space
// reserve ([Reserve]) writes fail with a [*NoSpaceError] naming the data
// directory ([ErrNoSpace]) instead of letting badger fault on a page of a
// mapped file it cannot allocate (SIGBUS). Below the reserve [Open] opens
// the database read-only; [Close] does not flush onto a full disk.
//
// Writes through badger are not fsynced individually (SyncWrites is off);
// callers that promise durability call [DB.Sync] before acknowledging.
package kv
