// Command loadgen drives an append endpoint (HTTP POST of the entry bytes,
// answered with the entry's index) with concurrent writers of fixed-size
// random entries for a fixed time, and prints throughput and latency. Each
// writer keeps one HTTP/1.1 connection and sends its next request when the
// previous answer is in, with a pre-formatted request and net/http's
// ReadResponse rather than the full net/http client: the generator shares
// the machine with the server it measures, so its own CPU must stay small.
//
// It measures Tessera's POSIX conformance log (POST /add) and this
// repository's log the same way: with -serve ADDR (a separate process, as
// Tessera's server is) or -self (in this process) it opens our log in a
// temporary badger store and serves the same POST /add over loopback HTTP.
//
//	loadgen -url http://127.0.0.1:2025/add -writers 256 -duration 10s -label tessera
//	loadgen -serve 127.0.0.1:2026 &   loadgen -url http://127.0.0.1:2026/add -writers 256 -label agentix
//	loadgen -self -writers 256 -duration 10s
//	loadgen -genkey NAME     prints a note signing key (for Tessera's LOG_PRIVATE_KEY)
//	loadgen -wait URL        waits until URL answers (any status)
package main
