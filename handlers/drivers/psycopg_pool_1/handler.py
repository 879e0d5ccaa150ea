"""psycopg 3 through a ``psycopg_pool.ConnectionPool(min_size=1)``: a pool of one per environment.

What it sends
    The pool's connections are psycopg's defaults (autocommit off,
    ``prepare_threshold=5``). ``with pool.connection() as conn`` commits when the
    block ends and hands the connection back; a connection returned idle is not
    reset (psycopg_pool, "Connection life cycle": only one left in a transaction
    is rolled back). ``max_size`` defaults to ``min_size``.

What the matrix shows
    The same wire traffic as ``psycopg_default`` once the pool holds its one
    connection, so the same verdicts: a pool inside one Lambda environment
    changes nothing for the database (an environment runs one request at a time).
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ...workload.settings import DbSettings
from .. import workload
from ..psycopg_default.handler import CursorDb, connect_kwargs

CONFIG = "psycopg_pool_1"
SETTINGS = DbSettings.from_env()
POOL: ConnectionPool[Any] = ConnectionPool(kwargs=connect_kwargs(SETTINGS), min_size=1,
                                           name=CONFIG, open=True)
# Init waits for the pool's connection; a failure is reported by the first checkout.
with contextlib.suppress(psycopg.Error):
    POOL.wait(timeout=SETTINGS.connect_timeout_s)


def _run(work: workload.Work) -> workload.Response:
    with POOL.connection() as conn, conn.cursor() as cur:
        return work.run(CursorDb(cur))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run,
                           errors=(psycopg.Error, OSError))
