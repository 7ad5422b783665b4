#!/usr/bin/env bash
# Scale: the same look-ups over HTTP against `scim-host serve` (release build, SQLite file) with
# 2,000 users and with 1,000,000 users, seeded through the store's bulk path. Prints the seeding
# rate, the throughput of GET /Users/{id}, `userName eq` and `externalId eq` (wrk, 16
# connections), the cost of a page at startIndex=1 and at startIndex=900000, and the server's
# memory after the queries. Listens on 127.0.0.1 only; stops what it starts.
#
#   bench/scale.sh [seconds per phase, default 5] [large size, default 1000000]
set -euo pipefail

DURATION="${1:-5}"
LARGE="${2:-1000000}"
SMALL=2000
CONNECTIONS=16
THREADS=2

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scim-scale-bench.XXXXXX")"
SERVER=""

cleanup() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
(cd "$ROOT" && cargo build --release --quiet -p scim-host)
BIN="$TARGET/release/scim-host"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wrk's script: GETs of `path`, where {n} is a random seeded user's number and {id} a random
# id out of IDS_FILE.
cat >"$WORK/get.lua" <<'LUA'
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local users = tonumber(os.getenv("BENCH_USERS"))
local template = os.getenv("BENCH_PATH")
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
request = function()
    local path = template:gsub("{n}", tostring(math.random(0, users - 1)))
    path = path:gsub("{id}", ids[math.random(1, #ids)])
    return wrk.format("GET", path)
end
LUA

# Prints requests/s and the mean latency (ms) of one phase; fails on any answer but 2xx.
phase() {
    local users="$1" path="$2" out
    out="$(BENCH_TOKEN="$TOKEN" BENCH_USERS="$users" BENCH_PATH="$path" IDS_FILE="$WORK/ids" \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/get.lua" "$URL")"
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        echo "$out" >&2
        echo "some requests failed" >&2
        exit 1
    fi
    awk '/^Requests\/sec:/ { rps = $2 }
         /^    Latency/ { v = $2; if (v ~ /us$/) ms = v / 1000; else if (v ~ /ms$/) ms = v + 0; else ms = v * 1000 }
         END { printf "%.0f %.2f\n", rps, ms }' <<<"$out"
}

# One size: seeds a fresh file, serves it, runs the phases; prints one line of figures.
measure() {
    local users="$1" db="$WORK/scale-$1.db" port
    TOKEN="$("$BIN" --db "$db" settings enable | sed -n 's/^token: //p')"
    echo "seeding $users users: $("$BIN" --db "$db" bench --seed --users "$users")" >&2
    port="$(free_port)"
    "$BIN" --db "$db" serve --listen "127.0.0.1:$port" >"$WORK/serve.out" 2>/dev/null &
    SERVER=$!
    URL="http://127.0.0.1:$port/scim/v2"
    for _ in $(seq 300); do
        curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "$URL/ServiceProviderConfig" && break
        sleep 0.1
    done

    # A thousand ids from pages across the whole order.
    : >"$WORK/ids"
    for k in $(seq 0 9); do
        curl -fs -H "Authorization: Bearer $TOKEN" \
            "$URL/Users?startIndex=$((k * users / 10 + 1))&count=100&attributes=id" |
            python3 -c 'import json, sys; print("\n".join(u["id"] for u in json.load(sys.stdin)["Resources"]))' \
                >>"$WORK/ids"
    done

    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    read -r get_rps get_ms < <(phase "$users" "/scim/v2/Users/{id}")
    read -r name_rps name_ms < <(phase "$users" '/scim/v2/Users?filter=userName%20eq%20%22user{n}%40example.com%22')
    read -r ext_rps ext_ms < <(phase "$users" '/scim/v2/Users?filter=externalId%20eq%20%22ext-{n}%22')
    read -r first_rps first_ms < <(phase "$users" '/scim/v2/Users?startIndex=1&count=100')
    local deep=$((users * 9 / 10))
    read -r deep_rps deep_ms < <(phase "$users" "/scim/v2/Users?startIndex=$deep&count=100")
    local rss hwm
    rss="$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER/status")"
    hwm="$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER/status")"
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
    echo "$users $get_rps $get_ms $name_rps $name_ms $ext_rps $ext_ms $first_rps $first_ms $deep $deep_rps $deep_ms $rss $hwm"
}

small="$(measure "$SMALL")"
large="$(measure "$LARGE")"

report() {
    awk -v small="$small" -v large="$large" 'BEGIN {
        split(small, s, " "); split(large, l, " ")
        printf "%-34s %16s %16s %7s\n", "requests/s (mean latency)", s[1] " users", l[1] " users", "ratio"
        row("GET /Users/{id}", 2, 3)
        row("filter=userName eq", 4, 5)
        row("filter=externalId eq", 6, 7)
        row("startIndex=1, count=100", 8, 9)
        row("startIndex=9/10 of users, count=100", 11, 12)
        printf "%-34s %13s MiB %12s MiB\n", "RSS of serve after the queries", s[13], l[13]
        printf "%-34s %13s MiB %12s MiB\n", "peak RSS (VmHWM)", s[14], l[14]
    }
    function row(name, r, m) {
        printf "%-34s %8.0f (%4.2f ms) %7.0f (%4.2f ms) %6.2fx\n", name, s[r], s[m], l[r], l[m], s[r] / l[r]
    }'
}
report
