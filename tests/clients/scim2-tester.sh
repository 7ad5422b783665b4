#!/usr/bin/env bash
# Runs scim2-tester (PyPI, a SCIM 2.0 compliance checker no one here wrote) against
# `scim-host serve` on a fresh database, and fails unless every check it prints is SUCCESS,
# apart from the checks listed in tests/clients/scim2-tester/EXPECTED-FAILURES.md.
#
# Usage: tests/clients/scim2-tester.sh [path/to/scim-host]   (default: target/release/scim-host)
# Builds nothing; makes a Python virtual environment under target/ on first use.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
host="$(realpath -m "${1:-$repo/target/release/scim-host}")"
venv="$repo/target/clients/scim2-venv"

# The checks that contradict the product's deliberate rules, as "check name|text of its
# reason". Each is explained in scim2-tester/EXPECTED-FAILURES.md; any other failure fails.
expected_failures=(
  "object_replacement|emails cannot change"
  "check_remove_attribute|did not remove attribute 'active'"
)

if [[ ! -x "$host" ]]; then
  echo "scim-host not found at $host: build it with cargo build --release -p scim-host" >&2
  exit 2
fi

if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  scim2-cli==0.6.0 scim2-tester==0.5.2

# shellcheck source-path=SCRIPTDIR source=serve.sh
source "$repo/tests/clients/serve.sh"
start_server "$host"

# scim exits non-zero when any check fails; the verdict below is made from its output.
"$venv/bin/scim" --url "$url" -h "Authorization: Bearer $token" test >"$work/tester.out" 2>&1 ||
  true
stop_server

cat "$work/tester.out"
echo

# A result line starts with a status word; the lines after it, up to the next one, are its
# reason. Passing checks are SUCCESS; every other status counts as a failure, expected or not.
printf '%s\n' "${expected_failures[@]}" >"$work/expected"
awk -v expected_file="$work/expected" '
  BEGIN {
    while ((getline line < expected_file) > 0) {
      split(line, part, "|")
      known_name[++known] = part[1]
      known_text[known] = part[2]
    }
  }
  function settle() {
    if (status == "") return
    if (status == "SUCCESS") { passed++; status = ""; return }
    failed++
    for (i = 1; i <= known; i++) {
      if (name == known_name[i] && index(reason, known_text[i]) > 0) {
        printf "expected failure (documented): %s %s\n", status, name
        expected++
        seen[i] = 1
        status = ""
        return
      }
    }
    printf "UNEXPECTED failure: %s %s\n", status, name
    unexpected++
    status = ""
  }
  /^(SUCCESS|COMPLIANT|ACCEPTABLE|DEVIATION|ERROR|CRITICAL|SKIPPED) / {
    settle()
    status = $1
    name = $2
    reason = ""
    next
  }
  { reason = reason "\n" $0 }
  END {
    settle()
    if (passed + failed == 0) { print "scim2-tester printed no result"; exit 1 }
    # Not in the "N passed, N failed" form of a test runner: the documented failures are not
    # failures of this run.
    # A documented failure that no longer happens makes the document wrong: that fails too.
    for (i = 1; i <= known; i++) {
      if (!(i in seen)) { printf "no longer fails (update EXPECTED-FAILURES.md): %s\n", known_name[i]; stale++ }
    }
    printf "scim2-tester: %d checks succeed; %d fail as EXPECTED-FAILURES.md documents; %d unexpected; %d documented but passing\n", passed, expected, unexpected, stale
    exit unexpected + stale > 0 ? 1 : 0
  }
' "$work/tester.out"
