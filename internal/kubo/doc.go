// Package kubo pushes DAGs to a Kubo (go-ipfs) node through its RPC API,
// for operators who already run IPFS: the IPFS network is the scale-out
// engine for blocks.
//
// It speaks two RPC calls: POST /api/v0/dag/import (a CAR as a multipart
// file, roots pinned) and POST /api/v0/pin/ls (to confirm the pin). Kubo's
// RPC API has no authentication of its own by default; pass a token or
// basic credentials in the URL's userinfo if the node is behind a proxy
// that needs them.
package kubo
