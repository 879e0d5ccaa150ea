"""A reused connection that is checked and reopened once when it turns out dead.

This is the heart of ``module_level_resilient``; ``secrets_cached`` and
``iam_token`` reuse it with their own way of connecting. The rules:

* open lazily (or at init, by the caller), reuse across invocations;
* before use, a connection psycopg already knows is closed or broken is replaced;
* when a statement fails because the connection is gone (``pg_terminate_backend``,
  a server restart, an idle-session timeout, a socket reset while the
  environment was frozen), close it, connect once more and run the action again;
  any other error (a bad query, a statement timeout, too many clients on the
  reconnect) is returned to the caller, never retried in a loop;
* every statement runs under the statement timeout (``SET LOCAL``, see
  :func:`handlers.workload.db.bounded`), cursors in ``with`` blocks.

Caveat: a write whose connection dies *during* ``COMMIT`` may have committed;
the retry would repeat it. A real service would add an idempotency key; the
workload accepts the (tiny) window.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from . import db, events, routes

_log = logging.getLogger(__name__)


class ResilientConnection:
    """One connection per environment, reopened once when found dead."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]],
                 statement_timeout_ms: int | None) -> None:
        self._connect = connect
        self._timeout_ms = statement_timeout_ms
        self.conn: psycopg.Connection[Any] | None = None
        self.reconnects = 0

    def open(self) -> None:
        """Connect now (at init), keeping the error for the first invocation to report."""
        self.conn = self._connect()

    def _usable(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self._discard()
            self.conn = self._connect()
        return self.conn

    def _discard(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):  # already dead: only frees the socket
                self.conn.close()
        self.conn = None

    def run(self, action: routes.Action) -> events.Response:
        """Run the action, reopening the connection once if it is dead."""
        conn = self._usable()
        try:
            with db.bounded(conn, self._timeout_ms):
                return action(conn)
        except psycopg.Error as exc:
            if not db.is_connection_dead(exc, conn):
                raise
            _log.warning("connection lost (%s); reconnecting once", db.classify(str(exc)))
            self._discard()
            self.reconnects += 1
            conn = self._usable()
            with db.bounded(conn, self._timeout_ms):
                return action(conn)
