#!/usr/bin/env bash
# Side-by-side append benchmark: Tessera's POSIX conformance log and this
# repository's log, both driven over loopback HTTP (POST /add, 512-byte
# entries) by tlog/internal/loadgen, at 1 and 256 concurrent writers.
#
# Tessera is installed with `go install` from the Go module proxy into a
# temporary directory; none of its source is kept in this repository.
#
#   tlog/bench/tessera.sh                 # 10 s per run
#   DURATION=5s WRITERS="1 16 256" tlog/bench/tessera.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=${TESSERA_VERSION:-v1.0.4}
DURATION=${DURATION:-10s}
WRITERS=${WRITERS:-1 256}
PORT=${PORT:-20251}
work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "# installing github.com/transparency-dev/tessera/cmd/conformance/posix@$VERSION" >&2
GOBIN="$work/bin" go install "github.com/transparency-dev/tessera/cmd/conformance/posix@$VERSION"
go build -o "$work/loadgen" ./tlog/internal/loadgen

mkdir -p "$work/tessera"
LOG_PRIVATE_KEY=$("$work/loadgen" -genkey tessera.example/bench) \
	"$work/bin/posix" --storage_dir="$work/tessera" --listen="127.0.0.1:$PORT" 2>"$work/posix.log" &
pid=$!
"$work/loadgen" -wait "http://127.0.0.1:$PORT/checkpoint"

for w in $WRITERS; do
	"$work/loadgen" -url "http://127.0.0.1:$PORT/add" -writers "$w" -duration "$DURATION" -label "tessera-posix-$VERSION"
done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

"$work/loadgen" -serve "127.0.0.1:$PORT" 2>"$work/agentix.log" &
pid=$!
"$work/loadgen" -wait "http://127.0.0.1:$PORT/log/checkpoint"
for w in $WRITERS; do
	"$work/loadgen" -url "http://127.0.0.1:$PORT/add" -writers "$w" -duration "$DURATION" -label agentix-store
done
