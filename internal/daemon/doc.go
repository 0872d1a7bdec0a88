// Package daemon wires one node's HTTP surface into a single server:
//
//	/healthz        liveness ("ok")
//	/ipfs/<cid>     trustless gateway subset over the local blocks
//	                (?format=raw|car and the matching Accept types)
//
// Later capabilities mount under /log/, /nix/ and /api/v1/ per the
// interface contract. Reads are public. The server shuts down gracefully:
// in-flight requests finish before the node is closed.
package daemon
