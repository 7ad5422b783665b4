#!/usr/bin/env bash
# Runs the conformance suites (tests/*.json) against the SCIM component from Node.js: installs
# the pinned jco (npm ci), transpiles the component into transpiled/, runs the suites.
# Usage: tests/hosts/node/run.sh [COMPONENT.wasm]   (build it first: cargo build -p scim-host)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
component="$(realpath "${1:-$repo/target/component/wasm32-wasip2/guest/scim_plugin.wasm}")"

cd "$here"
npm ci --no-audit --no-fund --loglevel=error
rm -rf transpiled
npx --no-install jco transpile "$component" --instantiation sync --quiet --out-dir transpiled
exec node conformance.mjs --suites "$repo/tests" --transpiled transpiled
