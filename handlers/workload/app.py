"""One invocation, whatever the pattern: parse, route, run, answer, log one line.

A pattern module supplies only ``run(action)``: how it gets a connection and
what it does with it afterwards. Everything else is here, so the patterns can be
compared on their connection handling alone.

Database errors become ``503 {"error": ..., "kind": ...}`` (the kind as
``connstorm.error_kinds`` names it) so a load test can classify them from the
HTTP answer; any other exception is a bug and propagates: Lambda reports it as a
function error and API Gateway answers 502, as it would on AWS.

Each invocation writes one JSON line to stdout (the environment's log stream):
``pattern``, ``route``, ``status``, ``duration_ms``, ``connects`` (successful
connects so far in this environment), ``connect_attempts``,
``credential_fetches``, ``environment``, ``request_id`` and, on a database
error, ``error_kind`` and ``error``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

from . import db, events, routes
from .settings import ENV_ID_CHARS, environment_id, work_seconds

Runner = Callable[[routes.Action], events.Response]



class _StdoutHandler(logging.Handler):
    """Writes the bare message to whatever ``sys.stdout`` is now (Lambda's log stream).

    Our own handler because Lambda's root logger prefixes every line with level,
    time and request id, which would break "one JSON object per line".
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(record.getMessage() + "\n")
            sys.stdout.flush()
        except Exception:  # logging must never fail an invocation
            self.handleError(record)


#: ``APP_WORK_MS``, read once at Init (a bad value fails Init, naming the variable).
WORK_S = work_seconds()

_log = logging.getLogger("handlers.invocations")
if not _log.handlers:
    _log.addHandler(_StdoutHandler())
    _log.setLevel(logging.INFO)
    _log.propagate = False


def handle(event: Any, context: Any, *, pattern: str, run: Runner) -> dict[str, Any]:
    """Answer one API Gateway event with ``run`` supplying the connection."""
    started = time.perf_counter()
    env12 = environment_id()[:ENV_ID_CHARS]
    route = "unparsed"
    kind: str | None = None
    message: str | None = None
    try:
        request = events.parse_event(event)
    except events.BadEventError as exc:
        response = events.error(400, str(exc))
    else:
        route, found = routes.resolve(request, pattern=pattern, environment=env12,
                                      connects=lambda: db.COUNTERS.connects)
        if isinstance(found, events.Response):
            response = found
        else:
            try:
                response = run(found)
                if WORK_S:
                    # After the action: its connection is back (or closed) and no
                    # transaction is open, so only the environment is kept busy.
                    time.sleep(WORK_S)
            except psycopg.Error as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                kind = db.classify(str(exc))
                response = events.error(503, f"database error: {message}", kind)
    record: dict[str, Any] = {
        "pattern": pattern,
        "route": route,
        "status": response.status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "connects": db.COUNTERS.connects,
        "connect_attempts": db.COUNTERS.connect_attempts,
        "credential_fetches": db.COUNTERS.credential_fetches,
        "environment": env12,
        "request_id": getattr(context, "aws_request_id", None),
    }
    if kind is not None:
        record["error_kind"] = kind
        record["error"] = message
    _log.info(json.dumps(record, separators=(",", ":")))
    return response.to_proxy()
