"""psycopg2 with its defaults: a module-level connection, ``with conn:`` per request.

What it sends
    psycopg2 interpolates parameters on the client and sends each statement as a
    simple ``Query`` (psycopg2, "Passing parameters to SQL queries"): no
    prepared statements of any kind. Autocommit is off, so the first statement
    opens a transaction and ``with conn:`` commits it ("with statement": the
    connection is not closed).

What the matrix shows
    Nothing for a pooler to lose between transactions: it works on every path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg2
import psycopg2.extensions

from ...workload.settings import DbSettings
from .. import workload

CONFIG = "psycopg2_default"
SETTINGS = DbSettings.from_env()
_conn: psycopg2.extensions.connection | None = None


def _connection() -> psycopg2.extensions.connection:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(
            host=SETTINGS.host, port=SETTINGS.port, dbname=SETTINGS.dbname, user=SETTINGS.user,
            password=SETTINGS.password, sslmode=SETTINGS.sslmode,
            connect_timeout=max(1, round(SETTINGS.connect_timeout_s)),
            application_name=SETTINGS.application_name)
    return _conn


class _Db:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self.cur.execute(sql, tuple(params))
        return list(self.cur.fetchall()) if self.cur.description else []

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self.cur.executemany(sql, [tuple(p) for p in params])


def _run(work: workload.Work) -> workload.Response:
    conn = _connection()
    with conn, conn.cursor() as cur:
        return work.run(_Db(cur))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run,
                           errors=(psycopg2.Error, OSError))
