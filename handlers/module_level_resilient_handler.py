"""Pattern ``module_level_resilient``: reuse, check, reopen once when dead.

What it is
    Like ``module_level``, one connection per environment opened at init and
    reused; but a connection found closed or broken is replaced, a statement
    that fails because the connection is gone is retried once on a fresh one,
    every statement runs under a statement timeout (``DB_STATEMENT_TIMEOUT_MS``,
    5000 when unset), the connect timeout is short (``DB_CONNECT_TIMEOUT_S``, at
    most 3 s here) and cursors live in ``with`` blocks. A failed connect at init
    does not fail Init: the first invocation connects. The mechanics are in
    :mod:`handlers.workload.resilient`.

When it is right
    Direct connections or a pooler, wherever connections get dropped: restarts,
    failovers, ``idle_session_timeout``, proxies' idle timeouts, sockets reset
    while an environment was frozen. This is the pattern to copy.

How it fails
    It still holds one connection per environment, frozen or not, so it does not
    bound the total: past ``max_connections`` it fails like ``module_level``
    (``too many clients already``), only with a clean 503 instead of a stuck
    environment. It retries once, never in a loop, so an outage is reported,
    not hidden.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import psycopg

from .workload import app, db, events, routes
from .workload.resilient import ResilientConnection
from .workload.settings import DbSettings

PATTERN = "module_level_resilient"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
MAX_CONNECT_TIMEOUT_S = 3.0

_env = DbSettings.from_env()
SETTINGS = dataclasses.replace(
    _env,
    connect_timeout_s=min(_env.connect_timeout_s, MAX_CONNECT_TIMEOUT_S),
    statement_timeout_ms=(DEFAULT_STATEMENT_TIMEOUT_MS if _env.statement_timeout_ms is None
                          else _env.statement_timeout_ms),
)
CONNECTION = ResilientConnection(lambda: db.connect(SETTINGS), SETTINGS.statement_timeout_ms)
# On failure the first invocation connects again and reports the error if it persists.
with contextlib.suppress(psycopg.Error):
    CONNECTION.open()


def _run(action: routes.Action) -> events.Response:
    return CONNECTION.run(action)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
