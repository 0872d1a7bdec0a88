// Package node holds what a running agentix-store node is made of: its data
// directory, configuration, keys, bearer token and trust policy, and the
// opened database, block store and log.
//
// A data directory is resolved, in order, from the --dir flag, then
// $AGENTIX_STORE_DIR, then $XDG_DATA_HOME/agentix-store, then
// ~/.local/share/agentix-store. Its layout:
//
//	config.json         node name, log origin, listen address, witnesses, peers
//	keys/attest.key     attestation signing key (PKCS#8 PEM, 0600)
//	keys/attest.pub     its public key (PKIX PEM)
//	keys/log.key        log checkpoint signing key (signed-note private key, 0600)
//	keys/log.pub        its note verifier key
//	keys/witness.key    cosignature key used when witnessing peers' logs (0600)
//	keys/witness.pub    its note verifier key
//	keys/nix.key        Nix binary-cache signing key (name:base64, 0600)
//	keys/nix.pub        its public key (name:base64)
//	token               bearer token for writes to this node's daemon (0600)
//	trust-policy.json   this node's public keys, ready to hand to auditors
//	badger/             the database (blocks, pins, log, indexes)
//
// Init never overwrites an existing key, token or config; it only creates
// what is missing.
package node
