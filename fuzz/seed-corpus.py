#!/usr/bin/env python3
"""Seeds the fuzzers' corpora from the conformance suites in tests/: every filter, every PATCH
body and every request the suites send becomes a starting input. Writes corpus/<target>/."""
import hashlib
import json
import pathlib
import sys
import urllib.parse

here = pathlib.Path(__file__).resolve().parent
suites = here.parent / "tests"
corpus = here / "corpus"
methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


def save(target, data):
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def body_bytes(request):
    if "body" in request:
        return json.dumps(request["body"]).encode()
    if "raw_body" in request:
        return request["raw_body"].encode()
    return b""


count = 0
for suite in sorted(suites.glob("*.json")):
    for case in json.loads(suite.read_text())["cases"]:
        for step in case["steps"]:
            request = step.get("request")
            if not request:
                continue
            path, _, query = request["path"].partition("?")
            body = body_bytes(request)
            for name, value in urllib.parse.parse_qsl(query):
                if name.lower() == "filter":
                    save("filter", value.encode())
            if isinstance(request.get("body"), dict) and "filter" in request["body"]:
                save("filter", str(request["body"]["filter"]).encode())
            if request["method"] == "PATCH":
                save("patch", body)
                for op in request.get("body", {}).get("Operations", []) if isinstance(request.get("body"), dict) else []:
                    if isinstance(op, dict) and isinstance(op.get("path"), str):
                        save("filter", op["path"].encode())
            selector = methods.index(request["method"]) if request["method"] in methods else 0
            save("request", bytes([selector]) + path.lstrip("/").encode() + b"\0" + query.encode() + b"\0" + body)
            count += 1
print(f"seeded from {count} requests", file=sys.stderr)
