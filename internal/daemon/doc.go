// Package daemon wires one node's HTTP surface into a single server:
//
//	/healthz        liveness ("ok"); ?detail=1: JSON {"status": "ok"|"degraded",
//	                "follow": follow.Status} (200 either way)
//	/ipfs/<cid>     trustless gateway subset over the local blocks
//	                (?format=raw|car and the matching Accept types)
//	/log/           the node's transparency log: C2SP tlog-tiles reads
//	                (checkpoint, tile/…, tile/entries/…), JSON proofs, and
//	                tlog-witness add-checkpoint for the peers it witnesses
//	/api/v1/        JSON API (package internal/api): writes need the bearer token
//	/nix/           Nix binary cache: nix-cache-info, <hash>.narinfo signed
//	                with the node's Nix key, nar/… (plain or zstd)
//	/metrics        Prometheus metrics
//
// With Options.Follow, Serve runs a follower (package follow) over the
// node's workspaces and running system, exported as agentix_follow_*
// metrics and in /healthz?detail=1, and stops it before it returns.
//
// Later capabilities mount under /log/, /nix/ and /api/v1/ per the
// interface contract. Reads are public. The server shuts down gracefully:
// in-flight requests finish before the node is closed. Limits (see its
// doc) keep slow, idle or unauthenticated clients from starving the node:
// a per-address bound on unauthenticated connections, a deadline on whole
// request bodies, separate read and write in-flight limits that requests
// waiting for body bytes do not use up, and an unlimited /healthz.
package daemon
