"""Pattern ``module_level``: one connection opened at init and reused, no recovery.

What it is
    The connection is opened when the module is imported (Lambda's Init phase)
    and every invocation of the environment reuses it. This is the usual advice.

When it is right
    Steady traffic straight to a database that never drops connections, with
    concurrency (= environments = connections) safely below ``max_connections``.
    Warm invocations pay no connect at all.

How it fails
    * One connection per environment, held while the environment is frozen and
      idle: the database sees as many connections as Lambda has environments,
      busy or not, and a burst of concurrency past ``max_connections`` fails with
      ``sorry, too many clients already`` (at init: ``Runtime.InitError``, and the
      environment is discarded).
    * No recovery: once the server closes the connection (``pg_terminate_backend``,
      a restart or failover, ``idle_session_timeout``, a proxy's idle timeout)
      every later invocation of that environment fails until Lambda recycles it.
"""

from __future__ import annotations

from typing import Any

from .workload import app, db, events, routes
from .workload.settings import DbSettings

PATTERN = "module_level"
SETTINGS = DbSettings.from_env()
CONN = db.connect(SETTINGS)


def _run(action: routes.Action) -> events.Response:
    with db.bounded(CONN, SETTINGS.statement_timeout_ms):
        return action(CONN)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
