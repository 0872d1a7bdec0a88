// Package api is the node daemon's JSON/bytes API under /api/v1/ and the
// client the CLI uses to reach a running daemon (as Kubo's CLI does) when the
// daemon holds the data directory.
//
// Reads are public. Every write (POST, PUT, DELETE) needs the node's bearer
// token (`Authorization: Bearer <token>`, the contents of <dir>/token; the
// scheme name is case-insensitive) or an operator's signature (see
// SignRequest); a missing or wrong credential gets 401 and changes nothing.
// Request bodies are size-limited (413 beyond the limit); a body cut short
// of its Content-Length gets 400, one not received in time 408. A signed
// body is checked against its digest in full before the write acts. JSON
// this package decodes (a peer's closures, the daemon's answers) is read
// strictly (exact-case member names, no duplicates), and an attestation
// envelope whose objects repeat a member name, even in another case, is
// refused with 400.
//
//	POST   /api/v1/add?chunker=C&pin=B           body: file bytes → AddResult
//	GET    /api/v1/cat/<cid>?offset=O&length=L   → file bytes
//	POST   /api/v1/blocks?codec=C                body: one block (must decode as C) → BlockStat
//	GET    /api/v1/blocks/<cid>                  → block bytes
//	GET    /api/v1/blocks/<cid>/stat             → BlockStat
//	POST   /api/v1/car?pin=B                     body: CARv1/v2 → ImportResult
//	GET    /api/v1/car/<cid>?version=V           → CAR
//	GET    /api/v1/pins                          → []Pin
//	POST   /api/v1/pins/<cid>?name=N&direct=B    → Pin
//	DELETE /api/v1/pins/<cid>
//	POST   /api/v1/gc                            → GCResult
//	GET    /api/v1/stat                          → Stats
//	POST   /api/v1/log/append                    body: entry → AppendResult
//	POST   /api/v1/attestations                  body: DSSE envelope → PublishResult
//	GET    /api/v1/closures?root=PATH            → closures held (cid, root, paths)
//	POST   /api/v1/pin-from?peer=URL&target=T    pull a CID or a peer's closure, pin it → PinFromResult (peer: http(s) only)
//	POST   /api/v1/ingest                        body: IngestRequest → NDJSON, result IngestView
//	POST   /api/v1/closures/import               body: ClosureImportRequest → NDJSON, result ClosureImported
//	POST   /api/v1/closures/import-car           body: closure CAR → ClosureVerified
//	GET    /api/v1/closures/<cid>                → []ClosureEntry
//	GET    /api/v1/closures/<cid>/verify         → ClosureVerified
//	GET    /api/v1/closures/<cid>/car            → closure CAR
//	GET    /api/v1/closures/<a>/diff/<b>         → closure.DiffResult
//	POST   /api/v1/closures/<cid>/attest         body: RunningRequest → RunningResult (signed with the node's key)
//	POST   /api/v1/genesis                       body: {"workspace": PATH} → node.Genesis
//	GET    /api/v1/attestations?subject=&sha256=&name=&predicateType=&signer=&limit= → []attest.Record
//	GET    /api/v1/bundles/<id>?car=B            → offline bundle (JSON)
//	GET    /api/v1/log/checkpoint                → Checkpoint
//	GET    /api/v1/log/entries?from=N&to=M       → []LogEntry
//	GET    /api/v1/log/inclusion?index=I|leaf_hash=H&size=N → Inclusion
//	GET    /api/v1/log/consistency?old=A&new=B   → Consistency
//
// Paths in requests (a workspace, a store path of the local Nix) are paths on
// the daemon's machine. JSON request bodies are decoded strictly (exact-case
// names, no duplicates, no unknown members). A long operation answers NDJSON:
// {"progress":{"done":N,"total":M}} lines, then one line with "result",
// "error" (with "status" and "kind"), or both (a refused ingest's report).
//
// Errors are JSON {"error": "...", "kind": "..."} with a 4xx status for bad
// requests (400 usage, 404 missing, 409 tamper or refused, 507 no space) and
// 5xx for failures of the node; kind names the error's meaning (errKinds) so
// the client's *Error matches the same sentinel (errors.Is), and kind
// "usage" is a *cli.UsageError again (errors.As).
package api
