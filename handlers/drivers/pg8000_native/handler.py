"""pg8000's native API with its defaults: ``pg8000.native.Connection.run`` per statement.

What it sends
    pg8000 (1.31) runs a statement with parameters as an *unnamed* prepared
    statement in three round trips, each ended by a ``Sync``: ``Parse``,
    then ``Describe``, then ``Bind``/``Execute`` (``Connection.execute_unnamed``
    in pg8000's ``core.py``). The native API does not open transactions by
    itself; the write runs ``START TRANSACTION`` ... ``COMMIT`` as its README's
    "Transactions" example does.

What the matrix shows
    Outside a transaction each ``Sync`` ends a transaction-pooling unit, so a
    pooler may hand the ``Describe`` or ``Bind`` to another server connection,
    where the unnamed statement is not: ``unnamed prepared statement does not
    exist`` (PgBouncer issue 1288 "Pgbouncer does not handle unnamed prepared
    statements intermittently"; lib/pq issue 889 describes the same split).
    PgBouncer tracks only *named* statements, even in 1.21+.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import pg8000.native

from ...workload.settings import DbSettings
from .. import workload

CONFIG = "pg8000_native"
SETTINGS = DbSettings.from_env()
_conn: pg8000.native.Connection | None = None


def _connection() -> pg8000.native.Connection:
    global _conn
    if _conn is None:
        tls = (ssl.create_default_context()
               if SETTINGS.sslmode in ("require", "verify-ca", "verify-full") else None)
        _conn = pg8000.native.Connection(
            SETTINGS.user or "", host=SETTINGS.host, port=SETTINGS.port,
            database=SETTINGS.dbname, password=SETTINGS.password, ssl_context=tls,
            application_name=SETTINGS.application_name)
    return _conn


class _Db:
    def __init__(self, conn: pg8000.native.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        found = self.conn.run(workload.numbered(sql, ":"), **workload.named(params))
        return list(found or [])

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        # The native API has no executemany: one run() per row, as its README loops.
        for row in params:
            self.rows(sql, row)


def _run(work: workload.Work) -> workload.Response:
    global _conn
    conn = _connection()
    try:
        if not work.write:
            return work.run(_Db(conn))
        conn.run("START TRANSACTION")
        try:
            response = work.run(_Db(conn))
        except pg8000.native.DatabaseError:
            conn.run("ROLLBACK")
            raise
        conn.run("COMMIT")
        return response
    except pg8000.native.InterfaceError:
        _conn = None  # the connection is gone: the next request opens another
        raise


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run,
                           errors=(pg8000.native.Error, OSError))
