"""Pattern ``in_process_pool``: a ``psycopg_pool`` connection pool per environment.

What it is
    A ``ConnectionPool`` of ``DB_POOL_SIZE`` connections (default 2) created at
    init, checked on checkout, each invocation borrowing one connection and
    returning it.

When it is right
    Almost never on Lambda. A pool pays off when many threads share a process;
    an environment runs one invocation at a time, so it only ever uses one of
    its connections. It appears in code ported from long-running servers, and
    it is here to show why a pool inside one environment does not bound the
    total.

How it fails
    The database sees environments × pool size connections, nearly all idle:
    with a pool of 5, a concurrency of 20 takes 100 slots, and
    ``too many clients already`` arrives ``pool size`` times sooner than with
    ``module_level``. The pool's maintenance (``max_lifetime``, reconnects) runs
    in threads that only move while the environment is thawed, so a frozen
    environment's pool is as stale as a single connection would be.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from .workload import app, db, events, routes
from .workload.settings import DbSettings

PATTERN = "in_process_pool"
SETTINGS = DbSettings.from_env()


def _count(conn: psycopg.Connection[Any]) -> None:
    # The pool connects in its own threads; count them like every other connect.
    db.COUNTERS.connect_attempts += 1
    db.COUNTERS.connects += 1


POOL: ConnectionPool[Any] = ConnectionPool(
    kwargs=db.conninfo(SETTINGS),
    min_size=SETTINGS.pool_size,
    max_size=SETTINGS.pool_size,
    timeout=SETTINGS.connect_timeout_s,
    configure=_count,
    check=ConnectionPool.check_connection,
    name=f"{PATTERN}-pool",
    open=True,
)
# Init waits for the whole pool so the footprint is the pool's, not a race.
# On failure the pool keeps retrying in the background; checkouts report errors.
with contextlib.suppress(psycopg.Error):
    POOL.wait(timeout=SETTINGS.connect_timeout_s * 2)


def _run(action: routes.Action) -> events.Response:
    with POOL.connection() as conn, db.bounded(conn, SETTINGS.statement_timeout_ms):
        return action(conn)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
