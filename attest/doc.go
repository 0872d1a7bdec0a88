// Package attest will hold in-toto v1 statements in DSSE envelopes: signers
// and verifiers, the agentix predicates, threshold approvals, the trust
// policy and offline bundles. Envelopes are stored as raw blocks (their CID is
// the attestation's id) and appended to the node's log.
package attest
