"""SQLAlchemy 2 over psycopg 3, used the way SQLAlchemy's 2.0 tutorial shows.

What it sends
    ``create_engine("postgresql+psycopg://...")`` keeps psycopg's defaults
    (autocommit off, ``prepare_threshold=5``). Reads run in ``with
    engine.connect() as conn:`` and are never committed: when the block ends the
    pool's "reset on return" rolls the transaction back (SQLAlchemy, "Connection
    Pooling", "Reset On Return"). psycopg, after a ``ROLLBACK`` on a connection
    that has prepared statements, sends ``DEALLOCATE ALL`` (psycopg 3.3
    ``Connection.rollback()``: its prepared-statement cache is cleared "because
    the same object may get recreated"). Writes run in ``with engine.begin()``
    (committed). ``pool_pre_ping=True`` adds a ``SELECT 1`` at each checkout
    (SQLAlchemy, "Disconnect Handling - Pessimistic").

What the matrix shows
    ``DEALLOCATE ALL`` is SQL-level, which RDS Proxy pins on ("Avoiding pinning
    an RDS Proxy"); it follows once psycopg has prepared something on a pooled
    connection: at once for an ``executemany()`` (the order's lines), or after
    five executions of a query between two rollbacks (every read ends in one,
    which also clears psycopg's counts). NullPool opens a connection per
    request, so nothing prepared outlives its request and no rollback finds any;
    it pays a connect per request instead.

    Behind PgBouncer before 1.21 in transaction mode all four fail: the order's
    ``_pg3_N`` outlives its ``COMMIT`` on the server connection (NullPool closes
    the client with it still there; QueuePool keeps it, and its next rollback's
    ``DEALLOCATE ALL`` is a transaction of its own, on whatever server connection
    is free). A request fails when another client prepares the same ``_pg3_N``
    where it was left (``already exists``) or the client binds it elsewhere
    (``does not exist``); how often depends on the interleaving, so the matrix
    reads the stranded statement off the server's log (PgBouncer, "Features",
    "SQL feature map for pooling modes": protocol-level prepared plans in
    transaction pooling need ``max_prepared_statements``, 1.21+).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy
from sqlalchemy import URL, create_engine, text
from sqlalchemy.engine import Connection, Engine

from ...workload.settings import DbSettings
from .. import workload

ERRORS: tuple[type[BaseException], ...] = (sqlalchemy.exc.SQLAlchemyError, OSError)


def engine(settings: DbSettings, **pool: Any) -> Engine:
    """The engine, with ``pool`` (the configuration's one setting) and nothing else changed."""
    url = URL.create("postgresql+psycopg", username=settings.user, password=settings.password,
                     host=settings.host, port=settings.port, database=settings.dbname)
    return create_engine(url, connect_args={
        "connect_timeout": max(1, round(settings.connect_timeout_s)),
        "sslmode": settings.sslmode, "application_name": settings.application_name}, **pool)


class _Db:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        result = self.conn.execute(text(workload.numbered(sql, ":")), workload.named(params))
        return [tuple(row) for row in result] if result.returns_rows else []

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        # A list of parameter sets: SQLAlchemy calls the driver's executemany().
        self.conn.execute(text(workload.numbered(sql, ":")),
                          [workload.named(row) for row in params])


def runner(db: Engine) -> workload.Runner:
    """Reads in ``engine.connect()`` (rolled back on return), writes in ``engine.begin()``."""

    def run(work: workload.Work) -> workload.Response:
        if work.write:
            with db.begin() as conn:
                return work.run(_Db(conn))
        with db.connect() as conn:
            return work.run(_Db(conn))

    return run
