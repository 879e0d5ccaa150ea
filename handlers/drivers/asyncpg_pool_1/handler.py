"""asyncpg through ``create_pool(min_size=1, max_size=1)``: its reset on release included.

What it sends
    As ``asyncpg_connection``, plus what the pool does when a connection goes
    back: ``Connection.reset()`` runs the reset query, by default
    ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;``
    (asyncpg, "Connection Pools": ``create_pool(reset=...)``, and
    ``Connection.get_reset_query``, added in 0.30). ``min_size`` must be lowered
    with ``max_size`` (the default ``min_size`` is 10).

What the matrix shows
    ``RESET ALL`` resets session settings, which RDS Proxy cannot track: every
    release pins the client to its database connection ("Avoiding pinning an
    RDS Proxy"), so each environment holds a database connection for its life.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ...workload.settings import DbSettings
from .. import workload
from ..asyncpg_connection.handler import ERRORS, LOOP, connect_kwargs, run_on

CONFIG = "asyncpg_pool_1"
SETTINGS = DbSettings.from_env()
_pool: asyncpg.Pool | None = None


async def _create_pool() -> asyncpg.Pool:
    # Made inside the loop: a Pool built outside binds to another loop.
    return await asyncpg.create_pool(**connect_kwargs(SETTINGS), min_size=1, max_size=1)


def _run(work: workload.Work) -> workload.Response:
    global _pool
    if _pool is None:
        _pool = LOOP.run_until_complete(_create_pool())
    conn = LOOP.run_until_complete(_pool.acquire())
    try:
        return run_on(conn, work)
    finally:
        LOOP.run_until_complete(_pool.release(conn))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run, errors=ERRORS)
