# shellcheck shell=bash
# Sourced by the client scripts: starts `scim-host serve` on a fresh database in a temporary
# folder, on 127.0.0.1 and a free port, and sets `work`, `url`, `port` and `token`. The server
# is stopped and the folder removed when the calling script exits; `stop_server` stops it
# earlier.

work="$(mktemp -d)"
server_pid=""

stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

cleanup_server() {
  stop_server
  rm -rf "$work"
}
trap cleanup_server EXIT

# start_server HOST_BINARY
start_server() {
  "$1" --db "$work/scim.db" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
  server_pid=$!

  # On a fresh database the server prints its token, then `listening: URL` once it accepts
  # connections.
  local _
  for _ in $(seq 1 100); do
    grep -q '^listening: ' "$work/serve.out" && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "scim-host serve exited early:" >&2
      cat "$work/serve.err" >&2
      exit 2
    fi
    sleep 0.1
  done
  url="$(sed -n 's/^listening: //p' "$work/serve.out")"
  token="$(sed -n 's/^token: //p' "$work/serve.out")"
  if [[ -z "$url" || -z "$token" ]]; then
    echo "scim-host serve printed no URL or token:" >&2
    cat "$work/serve.out" "$work/serve.err" >&2
    exit 2
  fi
  port="${url#http://127.0.0.1:}"
  port="${port%%/*}"
}
