"""Pattern ``session_state``: the resilient pattern plus per-connection session setup, as ORMs do.

What it is
    ``module_level_resilient`` (one connection per environment, checked,
    reopened once when dead, statement timeout per transaction), except that
    each new connection is set up the way ORMs and drivers commonly do it:
    ``SET search_path`` and ``SET TIME ZONE`` once per connection, and every
    statement run as a server-side *named* prepared statement (psycopg's
    ``prepare_threshold = 0``; JDBC, Npgsql, asyncpg and Prisma do the same
    by default or after a few runs).

When it is right
    Straight to PostgreSQL, or through PgBouncer in session mode: the session
    is the client's own, so the settings and prepared statements are reused
    and cost nothing.

How it fails
    Behind RDS Proxy the ``SET`` commands pin the client session to its
    database connection for the rest of the session (AWS, "Avoiding pinning
    an RDS Proxy": "Using ``SET`` commands"; the proxy logs "The client
    session was pinned to the database connection ... Reason: SQL changed
    session settings that the proxy doesn't track ..."). A Lambda environment
    keeps its connection while frozen, so every environment holds one
    database connection for its whole life: the proxy stops multiplexing,
    ``DatabaseConnectionsCurrentlySessionPinned`` climbs to the pool's limit
    and new environments fail with ``Timed-out waiting to acquire database
    connection.`` after the borrow timeout. The fix: put the settings in the
    role (``ALTER ROLE ... SET search_path``) or the proxy's ``InitQuery``.

    The named prepared statements do *not* pin: RDS Proxy multiplexes the
    extended query protocol since November 2023 (AWS Database Blog, "Amazon
    RDS Proxy multiplexing support for PostgreSQL Extended Query Protocol").
    They break PgBouncer before 1.21 in transaction mode instead
    (``prepared statement "_pg3_0" does not exist``), which is why
    ``module_level_resilient`` turns them off (``prepare_threshold=None``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import psycopg

from .workload import app, db, events, routes
from .workload.resilient import ResilientConnection
from .workload.settings import DbSettings

PATTERN = "session_state"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
MAX_CONNECT_TIMEOUT_S = 3.0
#: What an ORM typically runs on each new connection.
SESSION_SETUP = ("SET search_path TO public", "SET TIME ZONE 'UTC'")

_env = DbSettings.from_env()
SETTINGS = dataclasses.replace(
    _env,
    connect_timeout_s=min(_env.connect_timeout_s, MAX_CONNECT_TIMEOUT_S),
    statement_timeout_ms=(DEFAULT_STATEMENT_TIMEOUT_MS if _env.statement_timeout_ms is None
                          else _env.statement_timeout_ms),
)


def connect() -> psycopg.Connection[Any]:
    """A new connection with the session set up; every statement prepared by name."""
    conn = db.connect(SETTINGS)
    try:
        for statement in SESSION_SETUP:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.prepare_threshold = 0  # from now on each query is Parse'd with a name
    except BaseException:
        conn.close()
        raise
    return conn


CONNECTION = ResilientConnection(connect, SETTINGS.statement_timeout_ms)
# On failure the first invocation connects again and reports the error if it persists.
with contextlib.suppress(psycopg.Error):
    CONNECTION.open()


def _run(action: routes.Action) -> events.Response:
    return CONNECTION.run(action)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
