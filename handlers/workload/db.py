"""Opening connections the same way in every pattern, and counting them.

``application_name`` format
    ``<prefix>:<env12>``: ``prefix`` is ``DB_APPLICATION_NAME``, else
    ``AWS_LAMBDA_FUNCTION_NAME``, else ``lambda``; ``env12`` is the first 12 hex
    digits of the execution environment's id, the 32 hex digits after
    ``[$LATEST]`` in ``AWS_LAMBDA_LOG_STREAM_NAME`` (``pid<N>`` outside Lambda).
    At most 63 characters (PostgreSQL's limit); the prefix is shortened, never
    the id. Collectors split on the last ``:`` to count connections per function
    and per environment in ``pg_stat_activity``; PgBouncer forwards the name to
    its server connections.

Every connect of an environment goes through :func:`connect`, which counts
attempts and successes in :data:`COUNTERS` (module state: one per environment),
so each handler can log "connects so far in this environment".

Connections are opened in autocommit mode (a read is one statement, a write an
explicit ``conn.transaction()``: nothing is left ``idle in transaction``), with
``prepare_threshold=None``: server-side prepared statements break PgBouncer in
transaction mode and pin RDS Proxy sessions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from .kinds import classify
from .settings import DbSettings

__all__ = [
    "COUNTERS",
    "Counters",
    "bounded",
    "classify",
    "connect",
    "conninfo",
    "is_auth_failure",
    "is_connection_dead",
]


@dataclass
class Counters:
    """What this environment has done so far; read by the log line and ``/health``."""

    connect_attempts: int = 0
    connects: int = 0
    credential_fetches: int = 0


COUNTERS = Counters()


def conninfo(settings: DbSettings, *, user: str | None = None,
             password: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect`` (and a pool's ``kwargs``)."""
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "dbname": settings.dbname,
        "user": user or settings.user,
        "connect_timeout": max(1, round(settings.connect_timeout_s)),
        "sslmode": settings.sslmode,
        "application_name": settings.application_name,
        "autocommit": True,
        "prepare_threshold": None,
    }
    if settings.sslrootcert is not None:
        kwargs["sslrootcert"] = settings.sslrootcert
    pw = password if password is not None else settings.password
    if pw is not None:
        kwargs["password"] = pw
    return kwargs


def connect(settings: DbSettings, *, user: str | None = None,
            password: str | None = None) -> psycopg.Connection[Any]:
    """Open one connection, counted; errors propagate as ``psycopg.Error``."""
    COUNTERS.connect_attempts += 1
    conn = psycopg.connect(**conninfo(settings, user=user, password=password))
    COUNTERS.connects += 1
    return conn


@contextmanager
def bounded(conn: psycopg.Connection[Any], statement_timeout_ms: int | None) -> Iterator[None]:
    """Run the block in a transaction whose statements time out after the limit.

    ``SET LOCAL`` (here ``set_config(..., true)``) lasts one transaction, so it is
    correct behind PgBouncer in transaction mode, where a session ``SET`` would
    leak to other clients; the ``options`` startup parameter would be simpler but
    PgBouncer 1.18 refuses it. Without a limit the block runs as it is.
    """
    if not statement_timeout_ms:
        yield
        return
    with conn.transaction():
        conn.execute("SELECT set_config('statement_timeout', %s, true)",
                     (f"{statement_timeout_ms}ms",))
        yield


def is_connection_dead(exc: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    """Whether the error means the connection is gone (and a new one may work).

    True for a closed or broken connection (server restart, ``pg_terminate_backend``,
    idle-session timeout, a reset socket after a freeze), false for an error of the
    query itself, which a reconnect would only repeat.
    """
    if conn is not None and (conn.closed or conn.broken):
        return True
    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.IdleSessionTimeout):
        return True
    return isinstance(exc, psycopg.OperationalError) and classify(str(exc)) in {
        "connection_lost", "admin_shutdown", "idle_session_timeout"}


def is_auth_failure(exc: BaseException) -> bool:
    """Whether a connect failed because the credentials were refused."""
    return classify(str(exc)) == "authentication_failed"
