// Package schemas will embed the IPLD schemas (.ipldsch) of every stored
// record and the JSON Schemas of every attestation predicate, so the Go
// bindings load them and cannot drift.
package schemas
