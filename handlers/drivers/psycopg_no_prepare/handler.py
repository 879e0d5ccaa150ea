"""psycopg 3 with ``prepare_threshold=None``: the one setting changed from the defaults.

What it sends
    As ``psycopg_default`` (autocommit off, ``BEGIN ... COMMIT`` per request),
    but no query is ever prepared server-side: every execution is an unnamed
    ``Parse``/``Bind``/``Execute`` in one batch (psycopg, "Prepared statements":
    "You can disable the use of prepared statements on a connection by setting
    its prepare_threshold attribute to None").

What the matrix shows
    The setting psycopg's documentation gives for PgBouncer in transaction mode
    before 1.21: the verdict on PgBouncer 1.18 changes from ``fails`` to
    ``works``; nothing else changes.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ...workload.settings import DbSettings
from .. import workload
from ..psycopg_default.handler import CursorDb, connect_kwargs

CONFIG = "psycopg_no_prepare"
SETTINGS = DbSettings.from_env()
_conn: psycopg.Connection[Any] | None = None


def _connection() -> psycopg.Connection[Any]:
    global _conn
    if _conn is None or _conn.closed or _conn.broken:
        _conn = psycopg.connect(**connect_kwargs(SETTINGS), prepare_threshold=None)
    return _conn


def _run(work: workload.Work) -> workload.Response:
    conn = _connection()
    with conn.transaction(), conn.cursor() as cur:
        return work.run(CursorDb(cur))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run,
                           errors=(psycopg.Error, OSError))
