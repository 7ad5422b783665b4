#!/usr/bin/env bash
# Runs Microsoft's SCIM Postman collection (AzureAD/SCIMReferenceCode, kept in
# ../shared/conformance/microsoft-postman) with newman against `scim-host serve` on a fresh
# database: its endpoint, user, complex-attribute and "garbage input" requests, without the
# /Token and /serviceConfiguration steps of Microsoft's own sample and without the group
# requests (groups are not provisioned). Fails on any failed assertion that is not one of the
# expected failures documented in tests/clients/postman/EXPECTED-FAILURES.md.
#
# Usage: tests/clients/postman.sh [path/to/scim-host]   (default: target/release/scim-host)
# Builds nothing; installs the pinned newman into tests/clients/postman/node_modules on first use.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
host="$(realpath -m "${1:-$repo/target/release/scim-host}")"
client="$repo/tests/clients/postman"
collection="$repo/../shared/conformance/microsoft-postman/PostmanCollection.json"

# The folders and requests that apply, in the collection's order. Request names stand for
# themselves where their folder also holds a step that does not apply ("Get empty Groups",
# "Get ServiceProviderConfig", "Delete group 1").
selection=(
  "Get empty Users"
  "Get ResourceTypes"
  "Get Schemas"
  "User tests"
  "ComplexAttribute tests"
  "User tests with garbage"
  "Delete user 1"
  "Delete user 2"
  "Delete user3 emp2"
  "Delete user4 emp3"
  "Delete enterprise user"
)

# "Folder / Request / Assertion" of every assertion that contradicts the product's rules; each
# is explained in postman/EXPECTED-FAILURES.md. Any other failed assertion fails the run.
expected_failures=(
  "User tests / Get User Filters / Body contians id1"
  "User tests / User 2 replace test / Status code is 200"
  "User tests / Get user2 Check replace / Name is updated"
  "ComplexAttribute tests / create user1 / Status code is 201"
  "ComplexAttribute tests / Get user attributes / Body contians User1 email"
  "ComplexAttribute tests / Get user via attributes filter / Body contians User1 email"
  "ComplexAttribute tests / Delete User1 / Status code is 204"
  "User tests with garbage / Post emp2 / Status code is 201"
  "User tests with garbage / Post emp3 / Status code is 201"
  "User tests with garbage / Post enterprise user / Status code is 201"
  "User tests with garbage / Patch user omalley new username / Status code is 204"
  "User tests with garbage / patch user omalley active with boolean / Status code is 204"
  "User tests with garbage / Put a user OMalley / Body contians Germany"
  "User tests with garbage / Paginate / Total results"
  "User tests with garbage / get user attributes / Total results"
  "User tests with garbage / filter eq and (val or val) / Total results"
  "User tests with garbage / filter greater than / Total results"
  "Teardown garbage / Delete user3 emp2 / Status code is 204"
  "Teardown garbage / Delete user4 emp3 / Status code is 204"
  "Teardown garbage / Delete enterprise user / Status code is 204"
)

if [[ ! -x "$host" ]]; then
  echo "scim-host not found at $host: build it with cargo build --release -p scim-host" >&2
  exit 2
fi
if [[ ! -f "$collection" ]]; then
  echo "the Postman collection is not at $collection" >&2
  exit 2
fi

pinned="$(node -p "require('$client/package.json').dependencies.newman")"
installed="$(node -p "try { require('$client/node_modules/newman/package.json').version } \
  catch (e) { 'none' }")"
if [[ "$installed" != "$pinned" ]]; then
  (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
fi

# shellcheck source-path=SCRIPTDIR source=serve.sh
source "$repo/tests/clients/serve.sh"
start_server "$host"

folders=()
for name in "${selection[@]}"; do
  folders+=(--folder "$name")
done

# newman exits non-zero on any failed assertion; the verdict below is made from its report.
"$client/node_modules/.bin/newman" run "$collection" \
  --env-var Protocol=http \
  --env-var Server=127.0.0.1 \
  --env-var "Port=:$port" \
  --env-var Api=scim/v2 \
  --env-var "token=$token" \
  "${folders[@]}" \
  --reporters cli,json \
  --reporter-json-export "$work/newman.json" \
  --color off \
  >"$work/newman.out" 2>&1 || true
stop_server

sed 's/\x1b\[[0-9;]*m//g' "$work/newman.out"
echo

if [[ ! -s "$work/newman.json" ]]; then
  echo "newman wrote no report"
  exit 1
fi
node "$client/verdict.js" "$work/newman.json" "${expected_failures[@]}"
