// Package schemas holds the schemas of everything agentix-store stores or
// signs, embedded in the binary, with the Go bindings that load them.
//
// records.ipldsch is the IPLD schema of every stored record (Patch,
// AuditLogSnapshot, StorePathInfo, Closure with its ClosureEntry); package
// closure binds its own Go types for StorePathInfo and Closure to the same
// schema types, so there is one schema per record. The Go types in this
// package are bound to it with go-ipld-prime's bindnode, which checks field by field
// that each Go type matches its schema type; records are encoded and decoded
// only through that binding (Encode, Decode), as DAG-CBOR, and addressed by
// CIDv1 dag-cbor sha2-256 (CIDPrefix). So the Go types and the schema cannot
// drift: a mismatch fails every encode and the package tests.
//
// predicates/*.schema.json are the JSON Schemas (draft 2020-12) of the
// attestation predicates, one per predicate type; each schema's $id is its
// predicate type URI, PredicateTypePrefix + "<name>/v1", and shared
// definitions live in predicates/defs.schema.json. ValidatePredicate checks
// a predicate against its schema; it never fetches anything (only embedded
// schemas resolve). Predicate schemas are closed (additionalProperties is
// false): a new field is a new predicate version.
//
// Decoding trusts nothing: Decode rejects bytes that are not DAG-CBOR of the
// requested type with ErrRecord; ValidatePredicate rejects unknown types with
// ErrUnknownPredicate and violations with a *SchemaError naming the field.
package schemas
