"""PgBouncer collector: SHOW POOLS and SHOW STATS from the admin console.

Columns are read by name, never by position: every PgBouncer release adds some
(PgBouncer "Usage", sections "SHOW POOLS" and "SHOW STATS"); the row keeps them
under :mod:`connstorm.metric_names`' names.
The admin console speaks only the simple query protocol, so psycopg's automatic
prepared statements are switched off (``prepare_threshold=None``); with the
default, the sixth ``SHOW POOLS`` on one connection fails.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg.rows import dict_row

from connstorm import metric_names as names
from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter


def _num(row: dict[str, Any], key: str) -> int:
    value = row.get(key)
    return int(value) if value is not None else 0


class PgBouncerCollector(Collector):
    """Samples the pools of one database; see the ``pgbouncer`` row in ``docs/run-folder.md``."""

    name = "pgbouncer"

    def __init__(self, writer: SampleWriter, admin_dsn: str, *, database: str = "app",
                 interval_s: float = 1.0, connect_timeout_s: float = 3.0) -> None:
        super().__init__(writer, interval_s)
        self.admin_dsn = admin_dsn
        self.database = database
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.admin_dsn, autocommit=True, row_factory=dict_row,
                                         prepare_threshold=None,
                                         connect_timeout=max(1, int(self.connect_timeout_s)))
        return self._conn

    def sample(self) -> dict[str, Any]:
        """One read of the pools and stats of :attr:`database`."""
        conn = self._connection()
        with conn.cursor() as cur:
            cur.execute("SHOW POOLS")
            pools = [r for r in cur.fetchall() if r.get("database") == self.database]
            cur.execute("SHOW STATS")
            stats = [r for r in cur.fetchall() if r.get("database") == self.database]
        values: dict[str, Any] = {
            key: sum(_num(p, key) for p in pools) for key in names.PGBOUNCER_POOL_COUNTS
        }
        values[names.MAXWAIT_S] = round(max(
            (_num(p, "maxwait") + _num(p, "maxwait_us") / 1e6 for p in pools), default=0.0), 6)
        values[names.POOL_MODE] = pools[0].get("pool_mode") if pools else None
        for key, out in (("total_xact_count", names.TOTAL_XACT_COUNT),
                         ("total_query_count", names.TOTAL_QUERY_COUNT),
                         ("total_wait_time", names.TOTAL_WAIT_TIME_US)):
            values[out] = sum(_num(s, key) for s in stats)
        return values

    def close_target(self) -> None:
        """Close the console connection (the next sample reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()
