// Package closure imports Nix closures into the node's store as IPLD
// records, verifies them, and serves them back to Nix as a binary cache.
//
// # Import
//
// Import takes the closure of a store path from a Source — the local Nix
// (LocalNix: `nix path-info --json --recursive`, in the list form of Nix 2.8
// or the object form of newer Nix, and NARs serialised in-process from the
// store by DumpNAR, read-only and following no symlink, byte for byte what
// `nix-store --dump` writes, which stays available as
// LocalNix.NixStoreDump) or a Nix binary
// cache (BinaryCache: a file:// directory or an http(s):// URL; narinfo plus
// NAR compressed with xz, zstd, bzip2, gzip or not at all).
//
// Every NAR is streamed: it is never held whole in memory. While it is stored
// as a UnixFS file (CIDv1, raw leaves, buzhash chunks, so successive system
// generations share blocks) the same bytes are hashed with SHA-256 and parsed
// with go-nix's NAR reader plus the checks that reader lacks (CheckNAR). The
// import then requires, for every path:
//
//   - the NAR is well formed: no entry name that is empty, ".", "..", or
//     contains "/" or NUL; names strictly increasing; nothing truncated and
//     nothing after the root node (*NARError, ErrBadNAR);
//   - its SHA-256 and length are the narHash and narSize the source claims
//     (*HashMismatchError, ErrHashMismatch, naming the path and both hashes);
//   - the path and all its references are store paths in the source's store
//     dir (*StoreDirError, ErrForeignStoreDir);
//   - every reference is itself in the closure (*MissingReferenceError,
//     ErrIncomplete).
//
// Only after all of that are the records written and the closure pinned: one
// StorePathInfo per path and one Closure (schema in schemas/records.ipldsch,
// DAG-CBOR, CIDv1 sha2-256). A failed import pins nothing and indexes
// nothing.
//
// Memory is bounded whatever the NAR sizes: one goroutine reads a NAR in
// 1 MiB pieces that the hasher, the checker and store.Add share without
// copying (at most 4 MiB in flight per NAR); NARs over 8 MiB are imported one
// at a time, smaller ones ImportOptions.Jobs at a time. A NAR of at most
// 1 MiB from a source that can write it in the caller's goroutine (LocalNix)
// is instead written into one buffer per job, hashed as it is written, then
// checked and stored from that buffer, so a closure of many small paths pays
// no per-path process or stream set-up. A path already imported with the
// same store path, narHash and narSize is reused without reading it. Chunks
// come from a buffer pool and go back to it once written (store's buzhash
// splitter cuts where boxo's does). With the soft memory limit
// ImportMemoryLimit (48 MiB), an import's peak RSS was measured at 55–65 MB
// for a 15,000-file, 184 MB path and 60–73 MB for an 801-path, 349 MB
// closure (AGENTIX_BENCH_RSS=1 in the benchmarks breaks it down: about
// 21 MB are the executable's own pages and up to 16 MB the value log file
// being written, which badger maps; the rest is the Go heap).
//
// A store.GC running during an import or ImportCAR never collects what they
// wrote: every NAR is registered as a GC root (the "closure/in-flight" root
// source) in the same step as store.Add returns it — the root source waits
// for Adds that have returned but are not yet registered — reused NARs are
// registered before they are looked for, a CAR's roots before its blocks are
// written, and records are written and the Closure pinned under the store's
// GC lock (store.PinHeld).
//
// # Records and key space
//
// A Closure links to every StorePathInfo, which links to its NAR, so the
// Closure's CID names the whole closure: pinning it keeps everything,
// ExportCAR/ImportCAR move it as one CAR, Verify re-checks it from the store
// alone. The package's badger keys live under kv.PrefixClosure ("c/"): store
// path hash part → StorePathInfo, NAR hash → NAR, and the list of imported
// closures.
//
// # Binary cache
//
// NewCacheHandler serves nix-cache-info, <hash>.narinfo (signed with the
// node's Nix key over Nix's fingerprint) and nar/<narhash>.nar[.zst], so
// plain `nix copy --from http://…/nix` substitutes imported closures when
// the node's key is in trusted-public-keys.
//
// # What it trusts
//
// The store's blocks are hash-checked on every read (package store). Sources
// are not trusted: NAR bytes are checked against the narHash the source gave,
// so what an import trusts is that narHash — the local Nix's database, or a
// binary cache's narinfo. Narinfo signatures of a cache are kept in the
// records but not checked here; callers who import from a cache they do not
// trust must check them (or the narHash) themselves. RunningConfig attests
// only closures that Verify accepts.
package closure
