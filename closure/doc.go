// Package closure will import Nix closures (path-info JSON and NARs, from the
// local Nix or a binary cache) as IPLD records, verify them, and serve them
// back to Nix as a binary cache.
package closure
