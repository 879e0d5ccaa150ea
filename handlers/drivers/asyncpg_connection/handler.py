"""asyncpg, one connection with its defaults, driven from Lambda's synchronous handler.

What it sends
    asyncpg runs every query as a protocol-level named prepared statement
    (``__asyncpg_stmt_N__``) kept in a per-connection statement cache of 100
    (asyncpg, "asyncpg.connection.connect": ``statement_cache_size``), and is in
    autocommit unless a transaction is started; the write runs in
    ``conn.transaction()``. When a statement has a type whose codec asyncpg has
    not loaded yet it introspects it, turning JIT off around the lookup with
    ``set_config('jit', 'off', false)`` (asyncpg 0.32 ``connection.py``,
    ``_introspect_types``): here the order's ``id = ANY($1)``, a ``bigint[]``
    (OID 1016). ``set_config(..., false)`` changes a session setting, which pins
    behind RDS Proxy ("Avoiding pinning an RDS Proxy"; "Debugging RDS Proxy
    Pinning: How a Hidden JIT Toggle Created Thousands of Pinned Connections",
    richyen.com, 2026).

What the matrix shows
    The first order of each environment pins it behind RDS Proxy (the JIT
    toggle). Named statements break PgBouncer before 1.21 in transaction mode
    (``prepared statement "__asyncpg_stmt_1__" does not exist``: asyncpg issue 198
    "Pgbouncer and 'prepared statement does not exist'"; ``statement_cache_size=0``
    only makes asyncpg re-``Parse``, pull request 1065 "When prepared statements
    are disabled, avoid relying on them harder"); 1.21+ and RDS Proxy since
    November 2023 carry them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from ...workload.settings import DbSettings
from .. import workload

CONFIG = "asyncpg_connection"
SETTINGS = DbSettings.from_env()
#: One loop for the environment's life: Lambda calls the handler synchronously.
LOOP = asyncio.new_event_loop()
ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError,
                                           OSError, TimeoutError)
_conn: asyncpg.Connection | None = None


def connect_kwargs(settings: DbSettings) -> dict[str, Any]:
    """Where to connect; nothing that changes the driver's behaviour."""
    return {"host": settings.host, "port": settings.port, "user": settings.user,
            "password": settings.password, "database": settings.dbname,
            "timeout": settings.connect_timeout_s, "ssl": settings.sslmode,
            "server_settings": {"application_name": settings.application_name}}


class ConnectionDb:
    """:class:`..workload.Db` over an asyncpg connection, one awaited call at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return list(LOOP.run_until_complete(
            self.conn.fetch(workload.numbered(sql, "$"), *params)))

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        LOOP.run_until_complete(self.conn.executemany(workload.numbered(sql, "$"), params))


def run_on(conn: asyncpg.Connection, work: workload.Work) -> workload.Response:
    """Run ``work`` on ``conn``: a read as it is (autocommit), a write in a transaction."""
    if not work.write:
        return work.run(ConnectionDb(conn))
    transaction = conn.transaction()
    LOOP.run_until_complete(transaction.start())
    try:
        response = work.run(ConnectionDb(conn))
    except BaseException:
        if not conn.is_closed():
            LOOP.run_until_complete(transaction.rollback())
        raise
    LOOP.run_until_complete(transaction.commit())
    return response


def _run(work: workload.Work) -> workload.Response:
    global _conn
    if _conn is None or _conn.is_closed():
        _conn = LOOP.run_until_complete(asyncpg.connect(**connect_kwargs(SETTINGS)))
    return run_on(_conn, work)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run, errors=ERRORS)
