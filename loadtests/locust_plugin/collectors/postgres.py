"""PostgreSQL collector: client backends by state and application, against max_connections.

It connects as the superuser on purpose: when the application role has used up
every ordinary slot, ``superuser_reserved_connections`` still lets this one
connection in, so the collector keeps seeing the storm it is measuring. It holds
ONE connection for the whole run (a collector that opened a connection per
sample would itself add to the count) and reconnects after a loss.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg

from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter

#: Name the collector's own backend carries in pg_stat_activity.
APPLICATION_NAME = "connstorm-collector"

_QUERY = """
SELECT coalesce(state, 'unknown'), coalesce(nullif(application_name, ''), '(none)'),
       coalesce(usename, ''), count(*)
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2, 3
"""
_SETTINGS = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
"""


class PostgresCollector(Collector):
    """Samples ``pg_stat_activity``; see the ``postgres`` row in ``docs/run-folder.md``."""

    name = "postgres"

    def __init__(self, writer: SampleWriter, admin_dsn: str, *, app_user: str = "app",
                 interval_s: float = 1.0, connect_timeout_s: float = 3.0) -> None:
        super().__init__(writer, interval_s)
        self.admin_dsn = admin_dsn
        self.app_user = app_user
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.admin_dsn, autocommit=True,
                                         connect_timeout=max(1, int(self.connect_timeout_s)),
                                         application_name=APPLICATION_NAME)
        return self._conn

    def sample(self) -> dict[str, Any]:
        """One read of pg_stat_activity and the connection limits."""
        conn = self._connection()
        by_state: dict[str, int] = {}
        by_app: dict[str, int] = {}
        total = app = 0
        with conn.cursor() as cur:
            cur.execute(_QUERY)
            for state, app_name, user, count in cur.fetchall():
                total += count
                by_state[state] = by_state.get(state, 0) + count
                by_app[app_name] = by_app.get(app_name, 0) + count
                if user == self.app_user:
                    app += count
            cur.execute(_SETTINGS)
            settings = cur.fetchone()
        assert settings is not None  # a SELECT without FROM always returns its row
        return {"db_total": total, "db_app": app, "db_by_state": by_state, "db_by_app": by_app,
                "max_connections": settings[0], "superuser_reserved_connections": settings[1]}

    def close_target(self) -> None:
        """Close the held connection (the next sample reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()
