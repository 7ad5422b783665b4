#!/usr/bin/env bash
# Runs the conformance suites (tests/*.json) against the SCIM component from Python, through
# wasmtime-py: makes the virtual environment, installs the pinned wasmtime, runs the suites.
# Usage: tests/hosts/python/run.sh [COMPONENT.wasm]   (build it first: cargo build -p scim-host)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
component="$(realpath "${1:-$repo/target/component/wasm32-wasip2/guest/scim_plugin.wasm}")"
venv="$repo/target/py-host-venv"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
PYTHONDONTWRITEBYTECODE=1 exec "$venv/bin/python" "$here/conformance.py" "$component" --suites "$repo/tests"
