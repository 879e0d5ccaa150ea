"""Pattern ``leaky``: connect inside the handler and never close (the classic leak).

What it is
    Each invocation opens a connection and keeps a reference to it (here in a
    module-level list, as real code does through a cache, a global "last
    connection" or a closure) and never closes it. CPython would close an
    unreferenced connection when it is garbage collected; a referenced one stays
    open for the life of the environment.

When it is right
    Never. It is here because it is what a "works in testing" handler often
    does, and the footprint is unmistakable.

How it fails
    Each environment's connections grow by one per invocation, all ``idle`` in
    ``pg_stat_activity``, and vanish only when the environment is reaped (on
    AWS, after minutes to hours of idleness; a destroyed microVM may leave them
    until a server timeout). A handful of warm environments is enough to reach
    ``max_connections``; then every connect fails with
    ``sorry, too many clients already``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from .workload import app, db, events, routes
from .workload.settings import DbSettings

PATTERN = "leaky"
SETTINGS = DbSettings.from_env()
#: Every connection this environment ever opened, none closed: the leak.
OPENED: list[psycopg.Connection[Any]] = []


def _run(action: routes.Action) -> events.Response:
    conn = db.connect(SETTINGS)
    OPENED.append(conn)
    with db.bounded(conn, SETTINGS.statement_timeout_ms):
        return action(conn)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
