"""A function of a user's own, for the tests of routes-driven and own-locustfile load.

Uses no database. Every request's method, path and what it carried are
printed to the environment's log stream (``logs/lambda/<function>/<env>.log``),
so a test can count what reached the function, from the function's side.

* ``GET /health``: 200.
* ``GET /nums/{n}``: 200 when ``n`` is an integer within ``NUM_MIN``..``NUM_MAX``
  (the function's environment), else 400.
* ``POST /echo/{word}``: 200 when the JSON body is ``{"hello": "world"}`` and the
  header ``X-Test`` is ``yes``, else 400; ``word`` must be one of ``WORDS``.
* ``GET /fail``: raises PostgreSQL's "too many clients" error, as a handler
  refused by the database would: the front answers a bare 502.
"""

from __future__ import annotations

import json
import os
from typing import Any

MARK = "connstorm-test-request"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway (payload 2.0) handler."""
    method = event["requestContext"]["http"]["method"]
    path = event["rawPath"]
    params = event.get("pathParameters") or {}
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    print(f"{MARK} {method} {path}", flush=True)
    status = 200
    if path.startswith("/nums/"):
        low, high = int(os.environ["NUM_MIN"]), int(os.environ["NUM_MAX"])
        n = params.get("n", "")
        status = 200 if n.lstrip("-").isdigit() and low <= int(n) <= high else 400
    elif path.startswith("/echo/"):
        body = json.loads(event.get("body") or "null")
        ok = (body == {"hello": "world"} and headers.get("x-test") == "yes"
              and params.get("word") in os.environ["WORDS"].split(","))
        status = 200 if ok else 400
    elif path == "/fail":
        raise RuntimeError('connection failed: FATAL:  sorry, too many clients already')
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"path": path, "status": status})}
