// Package follow is the daemon following its node: it ingests each
// configured Agentix workspace as Agentix appends to its audit log, and
// attests the running NixOS system each time it changes.
//
// A Follower (Start, Stop; daemon.Serve runs one unless told not to) reads
// the node's config.json: `workspaces` (path, host, attr) and
// `runningSystem` (default /run/current-system; Options.RunningSystem, the
// `serve --running-system` flag, overrides it). config.json is itself
// watched, so a workspace added or removed with `config workspace-add` /
// `workspace-rm` while the daemon runs is followed or dropped at once.
//
// Every watched file is seen two ways: fsnotify on its directory, and a
// poller (size, modification time and inode every Options.Poll, 1 s) in
// case notifications are unavailable or miss an event. Changes are
// debounced (Debouncer: 200 ms after the last, at most 1 s after the first
// of a burst), so a new audit line is ingested well within 2 s.
//
// Per workspace, ingests are serialised and run through the node's own
// ingester (node.NewIngester, exactly as `agentix-store ingest`). A log that
// does not continue the accepted snapshot (audit.ErrNotAppendOnly) is
// logged and counted, kept as evidence by the ingester, and ingested again
// only once it changes; the watcher keeps going.
//
// When the running-system symlink leads to a store path other than the
// root of the latest running-config this node signed (so a restart does
// not attest again), the follower ingests the system's workspace, imports
// the closure from the local Nix and publishes a running-config/v2
// (node.AttestRunning) with the configuration chain of the workspace: the
// only one configured, else the one whose host (default the node name) is
// the node's name. With no such workspace, one that is not a git-repo
// flake, or one that does not evaluate to the running system, the closure
// is attested anyway, its configuration unproven, with the reason. The
// generation is N of the system-N-link in /nix/var/nix/profiles that leads
// to the same store path (0 if none).
//
// A failed step is logged, counted (Status, which the daemon exports as
// agentix_follow_* metrics and in GET /healthz?detail=1) and retried with
// backoff (1 s doubling to 1 min); nothing stops the daemon.
package follow
