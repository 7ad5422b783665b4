#!/usr/bin/env bash
# Start-up of `scim-host serve` (release build): the time from launching the process to its
# `listening:` line, first with an empty cache of the compiled component (it compiles), then
# with the cache it left (it loads the compiled code). Listens on 127.0.0.1 only; stops each
# server it starts.
#
#   bench/startup.sh [warm runs, default 5]
set -euo pipefail

RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scim-startup-bench.XXXXXX")"
SERVER=""

cleanup() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release --quiet -p scim-host)
BIN="$TARGET/release/scim-host"
"$BIN" --db "$WORK/scim.db" settings enable >/dev/null

# Milliseconds from launch to `listening:` (polled every millisecond, for at most 60 s).
start_once() {
    : >"$WORK/out"
    local started now
    started="$(date +%s%N)"
    "$BIN" --db "$WORK/scim.db" serve --listen 127.0.0.1:0 >"$WORK/out" 2>/dev/null &
    SERVER=$!
    for _ in $(seq 60000); do
        if grep -q '^listening:' "$WORK/out"; then
            now="$(date +%s%N)"
            kill "$SERVER"
            wait "$SERVER" 2>/dev/null || true
            SERVER=""
            echo $(((now - started) / 1000000))
            return 0
        fi
        sleep 0.001
    done
    echo "the server did not start" >&2
    exit 1
}

rm -rf "$WORK/scim.db.cache"
cold="$(start_once)"
warm=()
for _ in $(seq "$RUNS"); do
    warm+=("$(start_once)")
done
printf 'load: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'cold start (compiles the component): %s ms\n' "$cold"
printf 'warm start (cached, %s runs):         %s ms\n' "$RUNS" "${warm[*]}"
printf 'cache: %s\n' "$(du -sh "$WORK/scim.db.cache" | cut -f1)"
