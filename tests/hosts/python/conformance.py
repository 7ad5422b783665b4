"""The conformance runner for the Python host: replays every suite in tests/*.json against the
component, with the same semantics as the reference runner (host-harness/src/conformance.rs,
whose module documentation describes the format), and prints one line per case and a last line
`N passed, N failed`. Exits non-zero if any case fails.

Usage: python conformance.py COMPONENT.wasm [--suites DIR]
"""

import argparse
import base64
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

from component import PluginHost
from settings import MemorySettings, Token, token_digest
from user_store import MemoryStore

# The token the settings accept at the start of each suite.
SUITE_TOKEN = "conformance-token-7f3a9c"
# The SCIM base URL the settings advertise.
SUITE_BASE_URL = "https://scim.example.test/scim/v2"
# The tokens a suite rotates through, in order.
ROTATED_TOKENS = ["conformance-rotated-1", "conformance-rotated-2", "conformance-rotated-3"]

# Cases this host cannot run, as "file: case name" → why. This host bounds memory and time as the
# reference host does (see component.py), so none is listed.
UNSUPPORTED: dict[str, str] = {}

SUITE_FIELDS = {"suite", "description", "cases"}
CASE_FIELDS = {"name", "source", "steps"}
STEP_FIELDS = {"request", "expect", "capture", "host"}
REQUEST_FIELDS = {"method", "path", "headers", "body", "raw_body", "body_base64", "auth"}
EXPECT_FIELDS = {"status", "headers", "body"}


class CaseFailure(Exception):
    pass


def run_all(host: PluginHost, suites_dir: Path) -> int:
    """Runs every suite in a folder, printing one line per case; returns the number of failures."""
    suites = load_suites(suites_dir)
    if not suites:
        raise SystemExit(f"no suites (*.json) in {suites_dir}")

    passed = failed = skipped = 0
    for file, suite in suites:
        host.store = MemoryStore()
        host.settings = MemorySettings.with_token(SUITE_TOKEN, SUITE_BASE_URL)
        for case in suite["cases"]:
            why = UNSUPPORTED.get(f"{file}: {case['name']}")
            if why:
                skipped += 1
                print(f"skip   {file}: {case['name']} ({why})")
                continue
            try:
                run_case(host, case)
                passed += 1
                print(f"ok     {file}: {case['name']}")
            except CaseFailure as failure:
                failed += 1
                print(f"FAILED {file}: {case['name']} ({case['source']})\n       {failure}")

    def micros(seconds: float) -> str:
        return f"{seconds * 1e6 / max(host.requests, 1):.1f}"

    print(
        f"cost: {host.requests} requests, mean "
        f"{micros(host.instantiate_seconds + host.call_seconds)} µs per request with a fresh "
        f"instance each ({micros(host.instantiate_seconds)} µs instantiation + "
        f"{micros(host.call_seconds)} µs handle-scim-request)"
    )
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return failed


def load_suites(suites_dir: Path) -> list[tuple[str, dict]]:
    """Reads every `*.json` suite in a folder, in name order, refusing fields the format lacks."""
    suites = []
    for path in sorted(suites_dir.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        allow_only(suite, SUITE_FIELDS, path.name)
        for case in suite["cases"]:
            where = f"{path.name}: {case.get('name')}"
            allow_only(case, CASE_FIELDS, where)
            for step in case["steps"]:
                allow_only(step, STEP_FIELDS, where)
                allow_only(step.get("request") or {}, REQUEST_FIELDS, where)
                allow_only(step.get("expect") or {}, EXPECT_FIELDS, where)
        suites.append((path.name, suite))
    return suites


def allow_only(obj: dict, fields: set[str], where: str) -> None:
    unknown = sorted(set(obj) - fields)
    if unknown:
        raise SystemExit(f"{where}: unknown field {unknown[0]}")


def run_case(host: PluginHost, case: dict) -> None:
    context: dict[str, Any] = {"token": current_token(host.settings), "base": SUITE_BASE_URL}

    for step_no, step in enumerate(case["steps"], start=1):
        def fail(message: str) -> CaseFailure:
            return CaseFailure(f"step {step_no}: {message}")

        if step.get("host") is not None:
            try:
                apply_host_change(host, context, step["host"])
            except ValueError as error:
                raise fail(f"host change: {error}")
            continue
        spec = step.get("request")
        if spec is None:
            raise fail("has neither a request nor a host change")

        try:
            request = build_request(spec, context)
        except ValueError as error:
            raise fail(f"building the request: {error}")
        response = host.handle(request)
        body = parse_json(response["body"])

        if step.get("expect") is not None:
            try:
                check(step["expect"], response, body, context)
            except ValueError as error:
                text = truncate(response["body"].decode("utf-8", "replace"), 400)
                raise fail(
                    f"{spec['method']} {spec['path']} answered {response['status']} {text}: {error}"
                )
        for name, pointer in (step.get("capture") or {}).items():
            if not isinstance(pointer, str):
                raise fail(f"capture {name} must be a JSON pointer string")
            if pointer.startswith("header:"):
                value = header(response, pointer[len("header:") :])
                value = MISSING if value is None else value
            else:
                value = json_pointer(body, pointer)
            if value is MISSING:
                raise fail(f"nothing to capture at {pointer} for {name}")
            context[name] = value


def current_token(settings: MemorySettings) -> str:
    """The token of the settings: the suite token, or the last one rotated in."""
    digest = settings.tokens[-1].digest if settings.tokens else b""
    for token in [*ROTATED_TOKENS, SUITE_TOKEN]:
        if token_digest(token) == digest:
            return token
    return SUITE_TOKEN


def apply_host_change(host: PluginHost, context: dict, change: dict) -> None:
    store, settings = host.store, host.settings
    for key in sorted(change):
        value = change[key]
        if key == "disable":
            settings.enabled = False
        elif key == "enable":
            settings.enabled = True
        elif key == "rotate_token":
            current = current_token(settings)
            fresh = [t for t in ROTATED_TOKENS if t != current and f"used:{t}" not in context]
            if not fresh:
                raise ValueError("no more tokens to rotate to")
            settings.tokens = [Token(token_digest(fresh[0]))]
            context[f"used:{fresh[0]}"] = True
            context["token"] = fresh[0]
        elif key == "expire_token":
            for token in settings.tokens:
                token.expires_at = 1
        elif key == "delete_action":
            if value not in ("suspend", "delete"):
                raise ValueError("delete_action is delete or suspend")
            store.delete_suspends = value == "suspend"
        elif key == "protect_admins":
            if not isinstance(value, bool):
                raise ValueError("protect_admins is a boolean")
            store.protect_admins = value
        elif key in ("make_admin", "revoke_admin"):
            if not isinstance(value, str):
                raise ValueError(f"{key} names an id")
            id = substitute_str(value, context)
            if not store.set_admin(id, key == "make_admin"):
                raise ValueError(f"{key} {id}: NotFound")
        else:
            raise ValueError(f"unknown host change {key}")


def build_request(spec: dict, context: dict) -> dict:
    """The `http-request` record for a step, with the default headers the format promises."""
    target = substitute_str(spec["path"], context)
    path, _, query = target.partition("?")

    given = spec.get("headers") or {}
    headers = [
        {
            "name": name,
            "value": substitute_str(value, context) if isinstance(value, str) else canonical(value),
        }
        for name, value in sorted(given.items(), key=lambda item: item[0].encode())
    ]

    def has(name: str) -> bool:
        return any(h["name"].lower() == name.lower() for h in headers)

    if spec.get("auth", True) and not has("Authorization"):
        headers.append(
            {"name": "Authorization", "value": f"Bearer {substitute_str('${token}', context)}"}
        )

    bodies = [spec.get(k) for k in ("body", "raw_body", "body_base64") if spec.get(k) is not None]
    if len(bodies) > 1:
        raise ValueError("a request has at most one of body, raw_body and body_base64")
    body = b""
    if spec.get("body") is not None:
        body = canonical(substitute(spec["body"], context)).encode("utf-8")
    if spec.get("raw_body") is not None:
        body = substitute_str(spec["raw_body"], context).encode("utf-8")
    if spec.get("body_base64") is not None:
        try:
            body = base64.b64decode(spec["body_base64"], validate=True)
        except ValueError:
            raise ValueError("body_base64 is not base64")
    if body and not has("Content-Type"):
        headers.append({"name": "Content-Type", "value": "application/scim+json"})

    return {"method": spec["method"], "path": path, "query": query, "headers": headers, "body": body}


def substitute(value: Any, context: dict) -> Any:
    """Replaces `${name}` in every string of a JSON value."""
    if isinstance(value, str):
        # A string that is exactly one placeholder takes the captured value's own type.
        if value.startswith("${") and value.endswith("}"):
            name = value[2:-1]
            if "$" not in name and name in context:
                return context[name]
        return substitute_str(value, context)
    if isinstance(value, list):
        return [substitute(item, context) for item in value]
    if isinstance(value, dict):
        return {substitute_str(k, context): substitute(v, context) for k, v in value.items()}
    return value


PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def substitute_str(text: str, context: dict) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in context:
            return match.group(0)
        value = context[name]
        return value if isinstance(value, str) else canonical(value)

    return PLACEHOLDER.sub(replace, text)


def canonical(value: Any) -> str:
    """JSON text as the reference runner writes it (serde_json without `preserve_order`): compact,
    object keys in UTF-8 byte order. Key order can matter to a SCIM service that reads attribute
    names case-insensitively, so every host sends the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check(expect: dict, response: dict, body: Any, context: dict) -> None:
    if response["status"] != expect["status"]:
        raise ValueError(f"expected status {expect['status']}")

    for name, expected in (expect.get("headers") or {}).items():
        actual = header(response, name)
        if expected == "$absent":
            if actual is not None:
                raise ValueError(f"header {name} should be absent, is {actual}")
        elif actual is None:
            raise ValueError(f"header {name} is missing")
        elif not isinstance(expected, str):
            raise ValueError("expected header values are strings")
        elif expected != "$any":
            want = substitute_str(expected, context)
            if want != actual:
                raise ValueError(f"header {name} is {actual}, expected {want}")

    if expect.get("body") is not None:
        if body is MISSING:
            raise ValueError("expected a JSON body")
        subset(substitute(expect["body"], context), body, "")


def subset(expected: Any, actual: Any, at: str) -> None:
    """Raises unless `actual` contains `expected` (see the format's documentation)."""
    if expected == "$any":
        return
    if isinstance(expected, str) and expected.startswith("$len:") and isinstance(actual, list):
        if not expected[5:].isdigit():
            raise ValueError(f"{at}: bad {expected}")
        want = int(expected[5:])
        if len(actual) != want:
            raise ValueError(f"{at}: {len(actual)} elements, expected {want}")
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            here = f"{at}/{key}"
            if value == "$absent":
                if key in actual:
                    raise ValueError(f"{here} should be absent, is {canonical(actual[key])}")
            elif key not in actual:
                raise ValueError(f"{here} is missing")
            else:
                subset(value, actual[key], here)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        for index, item in enumerate(expected):
            if not any(matches(item, candidate, at) for candidate in actual):
                raise ValueError(f"{at}[{index}]: no element matches {canonical(item)}")
        return
    # Compared as JSON text, so that 1 and true (equal in Python) differ as they do in JSON.
    if canonical(expected) != canonical(actual):
        raise ValueError(f"{at} is {canonical(actual)}, expected {canonical(expected)}")


def matches(expected: Any, actual: Any, at: str) -> bool:
    try:
        subset(expected, actual, at)
        return True
    except ValueError:
        return False


def header(response: dict, name: str) -> Optional[str]:
    """The first header of that name, compared case-insensitively."""
    for h in response["headers"]:
        if h["name"].lower() == name.lower():
            return h["value"]
    return None


# What parse_json answers for a body that is not JSON (None is JSON's null).
MISSING = object()


def json_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901), or MISSING when there is none."""
    if document is MISSING or (pointer and not pointer.startswith("/")):
        return MISSING
    value = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, list) and re.fullmatch(r"0|[1-9][0-9]*", token):
            if int(token) >= len(value):
                return MISSING
            value = value[int(token)]
        elif isinstance(value, dict) and token in value:
            value = value[token]
        else:
            return MISSING
    return value


def parse_json(body: bytes) -> Any:
    """A response body as JSON, or MISSING when it is not JSON (or not UTF-8)."""
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return MISSING


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("component", help="the SCIM component (.wasm)")
    parser.add_argument("--suites", default=str(here.parent.parent), help="the folder of suites")
    args = parser.parse_args()

    host = PluginHost(args.component)
    failed = run_all(host, Path(args.suites))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
