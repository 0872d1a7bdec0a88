// Package store is the node's content-addressed block store: blocks, UnixFS
// files, CAR import and export, pins and garbage collection, and a trustless
// gateway over them. It knows nothing about Agentix or Nix.
//
// # Blocks
//
// Blocks are indexed in the node's badger database (opened through
// internal/kv) under the key kv.PrefixBlocks + multihash. A block smaller
// than [Options].PackThreshold (default [DefaultPackThreshold], 64 KiB) is
// stored inline: the value is exactly the block's bytes. A larger block (the
// default chunker's 256 KiB leaves) is appended to a pack file in
// <data dir>/packs, written with O_DIRECT where the filesystem allows it
// (buffered otherwise, or with [Options].NoDirectIO), each block at a
// 4096-byte boundary; its index value is then the block's pack, offset and
// length, tagged by badger's per-entry user metadata byte. Pack bytes are
// always written before the index entry that points to them, so an entry
// never points to bytes that were not written. [Blockstore] implements boxo's
// blockstore.Blockstore (plus Viewer and AllKeysChanWithErrer) on that key
// space:
//
//   - Every read is verified: Get and View re-hash the stored bytes and
//     return a *[CorruptBlockError] naming the CID (matching [ErrCorrupt] and
//     boxo's ErrHashMismatch) instead of bytes that do not hash to it. Only
//     [Options].NoVerifyOnRead turns this off.
//   - Has and GetSize never read block bytes; GetSize is exact.
//   - PutMany appends the large blocks to the active pack, then writes one
//     badger write batch, skipping blocks already stored with the same
//     length; with [Options].SyncWrites it returns only after the pack is
//     fdatasynced and then the database fsynced. Writes trust the CIDs they
//     are given: everything that takes blocks from outside (CAR import)
//     verifies them first. A failed pack write (disk full) indexes nothing.
//   - DeleteBlock and GC delete the index entry, sync the database, and then
//     free the block's pack space (punching a hole); GC removes pack files
//     that hold no block any more. Sizes reported by Stat stay logical.
//   - Identity-hash CIDs are never stored; their bytes are their digest.
//   - The codec is not part of the key: CIDs that share a multihash share
//     the stored bytes, and AllKeysChan yields CIDv1 raw CIDs.
//
// Missing blocks are reported with errors matching [ErrNotFound] (and
// go-ipld-format's ErrNotFound), naming the CID.
//
// # DAGs
//
// [Store.Walk] visits a DAG depth-first in pre-order, each block once,
// reading links from dag-pb, dag-cbor and dag-json blocks (raw blocks have
// none); [Links] decodes one block's links. A block that is missing, corrupt,
// undecodable ([DecodeError]) or of another codec ([UnsupportedCodecError])
// stops the walk with an error naming it. Pinning, GC and CAR export all use
// this walker.
//
// # UnixFS
//
// [Store.Add] stores a byte stream as a UnixFS file whose CID is the one
// `ipfs add --cid-version=1` (Kubo) gives the same bytes with the same
// chunker ([ParseChunker]: size-N, default size-262144, or buzhash): CIDv1,
// sha2-256, raw leaves, balanced layout of 174 links. [Store.Cat] reads a
// file back through the verifying blockstore as a seekable [File].
//
// # Pins and garbage collection
//
// A recursive pin ([Store.Pin]) keeps a whole DAG and is only created when
// the whole DAG is stored; a direct pin keeps one block. Pins are stored
// under kv.PrefixPins and survive restarts. [Store.GC] deletes every block
// not reachable from a recursive pin, a direct pin or a registered
// [RootSource], reporting what it removed and kept.
//
// GC and writers exclude each other through one lock: every operation that
// writes blocks not yet reachable from a root (Add, ImportCAR, a pin in
// progress) holds [Store.GCLock] for reading, and GC holds it exclusively
// for its whole mark and sweep. So a block written by an operation that
// overlaps a GC is never collected by it — provided the writer makes the
// block reachable (pins it, e.g. with [Store.PinHeld]) before releasing the
// lock. A write whose root is recorded later, outside the store (an
// attestation index entry, an audit head), stores its blocks through a
// [Hold] instead: each block is a temporary root from the GCLock step that
// writes it until the writer, having recorded its durable root, calls
// Release. GC reads the Holds before every other root, so the hand-over
// from Hold to root needs no lock. GC is conservative: if marking cannot read a block it must traverse,
// or a RootSource fails, it deletes nothing and returns the error.
//
// # CAR
//
// [Store.ExportCAR] writes the DAG under a root as CARv1 (streamed) or CARv2
// (with go-car's index; assembled in a temporary file, so the output need
// not be seekable), blocks in Walk order. It checks that the DAG is complete
// before writing anything.
//
// [Store.ImportCAR] accepts CARv1 and CARv2 and is all-or-nothing with
// respect to its input: it reads the whole CAR first, hashing every block
// against its CID and checking that every header root is in the CAR or the
// store (and, when asked to pin, that each root's DAG is complete), and
// writes only if all of that holds. Malformed input is an [InvalidCARError]
// ([ErrInvalidCAR]); a block that does not match its CID also matches
// [ErrCorrupt]; a missing root is a [MissingRootError] ([ErrMissingRoot]). A
// rejected import leaves the store unchanged. Input is bounded by go-car's
// limits: sections of at most 8 MiB, a header of at most 1 MiB.
//
// # Outside input
//
// [ParseCID] and [ParsePath] parse CIDs and IPFS paths (<cid>, /ipfs/<cid>,
// ipfs://<cid>, each optionally followed by /sub/path) given by users or
// peers, returning a [ParseError] matching [ErrInvalidCID] or
// [ErrInvalidPath].
//
// # Trust
//
// The package trusts the database: what is stored under a key was written
// by this package, including the pack locations in it. It does not trust
// block bytes, inline or in pack files (re-hashed on every read unless
// disabled; a pack that ends inside a block reads as a corrupt block), CAR
// files, or CID and path text. It trusts the callers'
// CIDs on Put. [Store.GatewayHandler] serves only local blocks, in the
// trustless formats (raw blocks and CARs) that clients verify themselves.
package store
