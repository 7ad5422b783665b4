#!/usr/bin/env python3
"""SCIM clients for the fault scripts, standard library only.

  create ADDR TOKEN PREFIX CLIENTS PER_CLIENT SECONDS
      CLIENTS threads each create up to PER_CLIENT users named PREFIX-cN-I@example.com, for at
      most SECONDS, and stop at the first request that gets no answer (the server is gone).
      Prints the userName of every create answered 201, one a line, as soon as it is answered.

  list ADDR TOKEN
      Prints the userName of every user the server lists (RFC 7644 §3.4.2, page by page).
"""

import http.client
import json
import sys
import threading
import time

USERS = "/scim/v2/Users"
REQUEST_TIMEOUT = 10


def request(addr, token, method, path, body=None):
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT)
    try:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "scim-faults"}
        if body is not None:
            headers["Content-Type"] = "application/scim+json"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def create(addr, token, prefix, clients, per_client, seconds):
    deadline = time.monotonic() + seconds
    printing = threading.Lock()

    def client(n):
        for i in range(per_client):
            if time.monotonic() > deadline:
                return
            user_name = f"{prefix}-c{n}-{i}@example.com"
            body = json.dumps({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "emails": [{"value": user_name, "primary": True, "type": "work"}],
                "active": True,
            })
            try:
                status, _ = request(addr, token, "POST", USERS, body)
            except OSError:
                # No answer: the server was killed. This create is not acknowledged.
                return
            if status == 201:
                with printing:
                    print(user_name, flush=True)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def list_users(addr, token):
    seen = 0
    for _ in range(10_000):
        status, body = request(addr, token, "GET", f"{USERS}?startIndex={seen + 1}&count=200")
        if status != 200:
            sys.exit(f"listing the users answered {status}: {body[:200]!r}")
        resources = json.loads(body).get("Resources", [])
        if not resources:
            return
        for user in resources:
            print(user["userName"])
        seen += len(resources)


def main(argv):
    if len(argv) == 8 and argv[1] == "create":
        create(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), float(argv[7]))
    elif len(argv) == 4 and argv[1] == "list":
        list_users(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
