// Package progress draws progress bars for long operations on a terminal,
// and nothing at all when its output is not a terminal (piped, redirected,
// --json), so scripts see only results.
package progress
