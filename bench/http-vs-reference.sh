#!/usr/bin/env bash
# Load over HTTP, side by side: `scim-host serve` (release build, SQLite file) and the Python
# reference server `scim2-server` (in memory), each seeded with the same users, then
# `userName eq` look-ups and creates with wrk, 16 connections each. Prints the throughput of
# each and the ratio. Both servers listen on 127.0.0.1 only; everything started here is stopped
# on exit.
#
#   bench/http-vs-reference.sh [seconds per phase, default 10]
set -euo pipefail

DURATION="${1:-10}"
USERS=2000
CONNECTIONS=16
THREADS=2
# The reference's version is pinned: its throughput is the baseline, and a new release may
# change it.
SCIM2_SERVER_VERSION=0.8.3
TOKEN="bench-token-$$"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/bench-venv"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scim-http-bench.XXXXXX")"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Tools: wrk from Debian, scim2-server from PyPI into a venv under target/.
if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if ! "$VENV/bin/scim2-server" --help >/dev/null 2>&1 ||
    ! "$VENV/bin/pip" show scim2-server 2>/dev/null | grep -qx "Version: $SCIM2_SERVER_VERSION"; then
    echo "installing scim2-server $SCIM2_SERVER_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "scim2-server==$SCIM2_SERVER_VERSION"
fi
(cd "$ROOT" && cargo build --release --quiet -p scim-host)
BIN="$TARGET/release/scim-host"

# A free port on 127.0.0.1, from the kernel.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `url` answers with `token`, for at most 30 s.
wait_ready() {
    local url="$1" token="$2"
    for _ in $(seq 300); do
        if curl -fs -o /dev/null -H "Authorization: Bearer $token" "$url/ServiceProviderConfig"; then
            return 0
        fi
        sleep 0.1
    done
    echo "the server at $url did not come up" >&2
    exit 1
}

# wrk's scripts: look-ups of a random seeded userName; creates of unique ones.
cat >"$WORK/lookup.lua" <<LUA
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local base = wrk.path
request = function()
    local n = math.random(0, $USERS - 1)
    return wrk.format("GET", base .. "/Users?filter=userName%20eq%20%22user" .. n .. "%40example.com%22")
end
LUA
cat >"$WORK/create.lua" <<LUA
local threads = 0
function setup(thread)
    thread:set("id", threads)
    threads = threads + 1
end
function init(args)
    counter = 0
    tag = tostring(os.time()) .. "-" .. id
end
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/scim+json"
local base = wrk.path
request = function()
    counter = counter + 1
    local name = "new-" .. tag .. "-" .. counter .. "@example.com"
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
        '","name":{"givenName":"New","familyName":"User"},"emails":[{"value":"' .. name ..
        '","type":"work","primary":true}],"active":true}'
    return wrk.format("POST", base .. "/Users", nil, body)
end
LUA

# Runs one wrk phase; prints requests/s, and fails on any answer that is not 2xx.
phase() {
    local script="$1" url="$2" token="$3" out
    out="$(BENCH_TOKEN="$token" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url")"
    echo "$out" >>"$WORK/wrk.log"
    if grep -q "Non-2xx\|Socket errors: connect [1-9]" <<<"$out"; then
        echo "$out" >&2
        echo "some requests failed" >&2
        exit 1
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

# scim-host: a fresh SQLite file, its own token, the users seeded through the store's bulk path.
HOST_PORT="$(free_port)"
HOST_TOKEN="$("$BIN" --db "$WORK/scim.db" settings enable | sed -n 's/^token: //p')"
"$BIN" --db "$WORK/scim.db" bench --seed --users "$USERS" >&2
"$BIN" --db "$WORK/scim.db" serve --listen "127.0.0.1:$HOST_PORT" >"$WORK/host.out" 2>"$WORK/host.log" &
PIDS+=($!)
HOST_URL="http://127.0.0.1:$HOST_PORT/scim/v2"
wait_ready "$HOST_URL" "$HOST_TOKEN"

# The reference: in memory, seeded over HTTP with the same users.
REF_PORT="$(free_port)"
"$VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$REF_PORT" --bearer-token "$TOKEN" \
    >"$WORK/ref.log" 2>&1 &
PIDS+=($!)
REF_URL="http://127.0.0.1:$REF_PORT/v2"
wait_ready "$REF_URL" "$TOKEN"
"$VENV/bin/python" - "$REF_URL" "$TOKEN" "$USERS" <<'PY'
import concurrent.futures, json, sys, urllib.request

url, token, users = sys.argv[1], sys.argv[2], int(sys.argv[3])

def create(n):
    name = f"user{n}@example.com"
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": f"ext-{n}",
        "name": {"givenName": "Bench", "familyName": f"User{n}"},
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
    }
    request = urllib.request.Request(
        url + "/Users", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status

with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(create, range(users)))
PY

echo "load: $(uptime | sed 's/.*load average: //')" >&2
echo "phases of ${DURATION} s, $CONNECTIONS connections, $USERS users seeded" >&2
host_lookup="$(phase "$WORK/lookup.lua" "$HOST_URL" "$HOST_TOKEN")"
ref_lookup="$(phase "$WORK/lookup.lua" "$REF_URL" "$TOKEN")"
host_create="$(phase "$WORK/create.lua" "$HOST_URL" "$HOST_TOKEN")"
ref_create="$(phase "$WORK/create.lua" "$REF_URL" "$TOKEN")"
echo "load after: $(uptime | sed 's/.*load average: //')" >&2

row() {
    awk -v name="$1" -v host="$2" -v ref="$3" \
        'BEGIN { printf "%-30s %12.0f %14.0f %7.1fx\n", name, host, ref, host / ref }'
}
printf '%-30s %12s %14s %8s\n' "requests/s" "scim-host" "scim2-server" "ratio"
row "GET /Users?filter=userName eq" "$host_lookup" "$ref_lookup"
row "POST /Users" "$host_create" "$ref_create"
