// Package tlog is the node's append-only transparency log: RFC 6962 Merkle
// tree hashing, C2SP tlog-checkpoint checkpoints signed as C2SP signed notes,
// reads per C2SP tlog-tiles, and witnessing per C2SP tlog-witness and
// tlog-cosignature, so that software nobody here wrote (Tessera's client, any
// tlog-tiles reader, any witness) can read and check it.
//
// # Promises
//
// Append returns an index only once the entry is durable: a batch of
// concurrent appends (group commit, at most Options.MaxBatch entries) is
// written in one badger transaction, together with the hash tiles it
// changes, the new tree state and a checkpoint signed over it, and the
// database is fsynced before any caller in the batch is acknowledged. The
// sequencer commits whatever queued while the previous batch was being
// synced; it lingers up to Options.MaxWait for more only when the previous
// batch had more than one entry, so a lone writer is acknowledged after one
// fsync, not after a timer.
//
// Indices are dense and final. Every checkpoint the log signs covers a
// prefix of the one signed after it, across restarts too: the size comes
// from the stored tree state, which only grows, and on Open a checkpoint
// older than the tree is re-signed, never one beyond it. If an fsync fails
// the log refuses further appends (ErrBroken) rather than build on data that
// may not be on disk.
//
// Checkpoint bodies are github.com/transparency-dev/formats/log.Checkpoint
// (origin, size, base64 root). The origin defaults to the signer's name.
// Witness cosignatures (cosignature/v1, verified with the witness's key
// before they are kept) are appended to the stored note of the checkpoint
// they cosign, and served with it.
//
// The Handler serves, relative to the log's prefix: checkpoint,
// tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>] (full tiles with immutable
// cache headers; a partial tile of width W is served whenever at least W
// hashes or entries exist, as tile prefixes never change), add-checkpoint,
// and JSON proofs (proof/inclusion, proof/consistency). Malformed requests
// get a 4xx status with a reason; only storage failures give 5xx.
//
// As a witness (Options.WitnessSigner set), the log cosigns a peer's
// checkpoint only if it verifies with that origin's key in Options.Peers, its
// old size equals the size this node last cosigned for that origin, and the
// consistency proof from that checkpoint verifies; the new size and root are
// recorded durably (kv.PrefixWitness) before the cosignature is returned, so
// a rollback or a fork is refused after restarts too (409, or 422 for a bad
// proof, 403 for a bad signature, 404 for an unknown origin, 400 otherwise).
//
// # Trust
//
// The package trusts its badger database (internal/kv) to return what was
// written and to make it durable on Sync; it recomputes nothing it stored
// on read, except that Open checks the stored checkpoint against the stored
// tree state. It trusts the Signer it is given and, as a witness, the peer
// verifier keys it is configured with. It trusts nothing in HTTP requests.
// Hashing and proofs are github.com/transparency-dev/merkle; tile paths and
// formats follow github.com/transparency-dev/tessera/api/layout.
//
// # Storage
//
// Under kv.PrefixLog: entries in runs (l/b/<first index>, one key per
// committed batch and entry bundle, the value in the tlog-tiles entry-bundle
// encoding), hash tiles (l/t/<level><index>, each holding the
// hashes of complete subtrees only), a leaf-hash index built behind the
// sequencer from the level-0 tiles as sorted runs (l/x/..., with its
// watermark l/w; lookups scan the tiles past the watermark, so they never
// depend on the indexer having caught up), the tree state (size and compact
// range) and the latest checkpoint note. Under kv.PrefixWitness: per peer
// origin, the size and root last cosigned.
package tlog
