// Command agentix-store is the node: a content-addressed block store, a
// transparency log and attestations for a NixOS node run by an Agentix agent.
//
// See README.md for a tour and DESIGN.md for the interface contract.
package main
