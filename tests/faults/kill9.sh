#!/usr/bin/env bash
# kill -9 in the middle of a stream of creates loses no acknowledged create.
#
# Starts `scim-host serve` on a temporary database on 127.0.0.1, runs concurrent create loops
# against it, kills the server with SIGKILL while they run, restarts it on the same file and
# checks that every userName answered 201 is listed. Repeats the kill KILL9_ROUNDS times (5 by
# default), then checks the file with SQLite's integrity check and that the activity log holds
# exactly one create per user. Prints the counts of each round
# and a last line `N passed, N failed`; exits non-zero on any loss.
#
# Usage: tests/faults/kill9.sh [path/to/scim-host]   (default: target/release/scim-host)
# Builds nothing. Needs python3 (standard library only).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
host="$(realpath -m "${1:-$repo/target/release/scim-host}")"
clients_py="$repo/tests/faults/scim_clients.py"
rounds="${KILL9_ROUNDS:-5}"
# Per round: 4 clients of at most 5,000 creates each, for at most 20 s; the kill comes first
# (within a second of the first create).
clients=4
per_client=5000
client_seconds=20

if [[ ! -x "$host" ]]; then
  echo "scim-host not found at $host: build it with cargo build --release -p scim-host" >&2
  exit 2
fi

work="$(mktemp -d)"
db="$work/scim.db"
server_pid=""
clients_pid=""

cleanup() {
  for pid in "$clients_pid" "$server_pid"; do
    if [[ -n "$pid" ]]; then
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

# start_server LOG_NAME: serves $db and sets `addr` (and `token` on the first start, when the
# database is fresh and the server prints it).
start_server() {
  local out="$work/$1.out"
  "$host" --db "$db" serve --listen 127.0.0.1:0 >"$out" 2>"$work/$1.err" &
  server_pid=$!
  local _
  # The component is compiled at start: allow up to 60 s.
  for _ in $(seq 1 600); do
    grep -qs '^listening: ' "$out" && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "scim-host serve exited early:" >&2
      cat "$work/$1.err" >&2
      exit 2
    fi
    sleep 0.1
  done
  local url
  url="$(sed -n 's/^listening: //p' "$out")"
  if [[ -z "$url" ]]; then
    echo "scim-host serve did not start listening:" >&2
    cat "$out" "$work/$1.err" >&2
    exit 2
  fi
  addr="${url#http://}"
  addr="${addr%%/*}"
  if grep -q '^token: ' "$out"; then
    token="$(sed -n 's/^token: //p' "$out")"
  fi
}

kill_server() {
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

passed=0
failed=0
total_acknowledged=0
total_lost=0

start_server "start-0"
if [[ -z "${token:-}" ]]; then
  echo "scim-host serve printed no token on a fresh database" >&2
  exit 2
fi

for round in $(seq 1 "$rounds"); do
  acknowledged="$work/acknowledged-$round"
  python3 "$clients_py" create "$addr" "$token" "r$round" "$clients" "$per_client" \
    "$client_seconds" >"$acknowledged" &
  clients_pid=$!

  # Kill once creates are being acknowledged, after a different delay each round.
  for _ in $(seq 1 200); do
    [[ -s "$acknowledged" ]] && break
    sleep 0.05
  done
  sleep "0.$((3 + round * 2 % 7))"
  before_kill="$(wc -l <"$acknowledged")"
  clients_running=yes
  kill -0 "$clients_pid" 2>/dev/null || clients_running=no
  kill_server
  wait "$clients_pid" || true
  clients_pid=""

  start_server "start-$round"
  python3 "$clients_py" list "$addr" "$token" | sort >"$work/listed-$round"
  sort -u "$acknowledged" >"$work/acked-$round"
  acked_count="$(wc -l <"$work/acked-$round")"
  lost_count="$(comm -23 "$work/acked-$round" "$work/listed-$round" | wc -l)"
  found_count=$((acked_count - lost_count))
  # In flight at the kill: answered by nobody, so present or absent are both right.
  unacknowledged_present="$(grep -c "^r$round-" "$work/listed-$round" || true)"
  unacknowledged_present=$((unacknowledged_present - found_count))
  duplicates="$(uniq -d "$work/listed-$round" | wc -l)"

  echo "round $round: acknowledged $acked_count, found $found_count, lost $lost_count" \
    "(acknowledged before the kill: $before_kill; clients still running at the kill:" \
    "$clients_running; in flight and kept: $unacknowledged_present; duplicate userNames:" \
    "$duplicates)"
  total_acknowledged=$((total_acknowledged + acked_count))
  total_lost=$((total_lost + lost_count))
  if [[ "$acked_count" -gt 0 && "$lost_count" -eq 0 && "$duplicates" -eq 0 &&
    "$clients_running" == yes ]]; then
    passed=$((passed + 1))
  else
    comm -23 "$work/acked-$round" "$work/listed-$round" | head -5 | sed 's/^/  lost: /'
    failed=$((failed + 1))
  fi
done

kill_server
integrity="$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$db")"
echo "integrity check of the database after $rounds kills: $integrity"
if [[ "$integrity" == ok ]]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# Each create's activity entry is committed with it: after the kills, the log names every user
# created and no create that was rolled back.
journal="$(python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
users = db.execute("SELECT count(*) FROM users").fetchone()[0]
logged = db.execute("SELECT count(*) FROM activity WHERE action = ? AND outcome = ?",
                    ("create", "ok")).fetchone()[0]
unlogged = db.execute("""SELECT count(*) FROM users u WHERE NOT EXISTS (
    SELECT 1 FROM activity a WHERE a.action = ? AND a.outcome = ?
    AND a.target = u.user_name || ? || u.id || ?)""", ("create", "ok", " (", ")")).fetchone()[0]
print(users, logged, unlogged)' "$db")"
read -r users_count logged_count unlogged_count <<<"$journal"
echo "activity log after $rounds kills: $users_count users, $logged_count creates logged," \
  "$unlogged_count users without their create"
if [[ "$users_count" -eq "$logged_count" && "$unlogged_count" -eq 0 ]]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

echo "over $rounds kills: acknowledged $total_acknowledged, found" \
  "$((total_acknowledged - total_lost)), lost $total_lost"
echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
