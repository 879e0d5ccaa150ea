"""psycopg 3 with its defaults: a module-level connection, one transaction per request.

What it sends
    ``psycopg.connect()`` leaves autocommit off, so each request is
    ``BEGIN ... COMMIT`` (``with conn.transaction()``, psycopg's "Transactions
    management"). A query executed more than ``prepare_threshold`` times (5 by
    default) on a connection is prepared server-side as a protocol-level named
    statement ``_pg3_0``, ``_pg3_1``... and later executions only ``Bind`` it
    (psycopg, "Prepared statements").

What the matrix shows
    Through PgBouncer before 1.21 in transaction mode the next transaction that
    binds ``_pg3_0`` may run on another server connection: ``prepared statement
    "_pg3_0" does not exist`` (or another client's ``_pg3_0`` ``already exists``).
    PgBouncer 1.21+ (``max_prepared_statements``, on by default from 1.24) and
    RDS Proxy since November 2023 ("Amazon RDS Proxy multiplexing support for
    PostgreSQL Extended Query Protocol", AWS Database Blog) carry them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from ...workload.settings import DbSettings
from .. import workload

CONFIG = "psycopg_default"
SETTINGS = DbSettings.from_env()
_conn: psycopg.Connection[Any] | None = None


def connect_kwargs(settings: DbSettings) -> dict[str, Any]:
    """Where to connect; nothing that changes the driver's behaviour."""
    kwargs: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "dbname": settings.dbname,
        "user": settings.user, "connect_timeout": max(1, round(settings.connect_timeout_s)),
        "sslmode": settings.sslmode, "application_name": settings.application_name}
    if settings.password is not None:
        kwargs["password"] = settings.password
    return kwargs


def _connection() -> psycopg.Connection[Any]:
    global _conn
    if _conn is None or _conn.closed or _conn.broken:
        _conn = psycopg.connect(**connect_kwargs(SETTINGS))
    return _conn


class CursorDb:
    """:class:`..workload.Db` over a psycopg cursor."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self.cur = cur

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self.cur.execute(sql, params)  # type: ignore[call-overload]
        return list(self.cur.fetchall()) if self.cur.description else []

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        # psycopg prepares an executemany() statement at once (prepare=True).
        self.cur.executemany(sql, params)  # type: ignore[arg-type]


def _run(work: workload.Work) -> workload.Response:
    conn = _connection()
    with conn.transaction(), conn.cursor() as cur:
        return work.run(CursorDb(cur))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run,
                           errors=(psycopg.Error, OSError))
