"""TcpProxy against a real PostgreSQL: forwarding, added latency, a stall, and stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def _connect(pg: PostgresServer, proxy: TcpProxy) -> psycopg.Connection[Any]:
    return psycopg.connect(host=proxy.host, port=proxy.port, user=pg.app_user,
                           password=pg.app_password, dbname=pg.app_dbname, connect_timeout=10,
                           autocommit=True)


def _timed_query(conn: psycopg.Connection[Any]) -> float:
    started = time.monotonic()
    assert conn.execute("SELECT 1").fetchone() == (1,)
    return time.monotonic() - started


def test_proxy_forwards_delays_stalls_and_stops(
        postgres_factory: Callable[..., PostgresServer]) -> None:
    pg = postgres_factory()
    proxy = TcpProxy(pg.host, pg.port)
    with proxy:
        # GIVEN a connection through the proxy, on loopback only
        assert proxy.host == "127.0.0.1"
        conn = _connect(pg, proxy)
        plain = _timed_query(conn)
        assert proxy.open_connections == 1
        # WHEN 200 ms are added each way for 2 s: a query's round trip takes 400 ms more
        proxy.impair(ms=200, seconds=2)
        assert _timed_query(conn) >= plain + 0.35
        time.sleep(2)
        # AND after the window it is fast again
        assert _timed_query(conn) < 0.3
        # WHEN a stall (ms covering the window) of 1.5 s: the query waits for its end
        proxy.impair(ms=10_000, seconds=1.5)
        assert _timed_query(conn) >= 1.3
        # AND clear() ends a stall at once, delivering in order what was held
        proxy.impair(ms=60_000, seconds=60)
        timer = threading.Timer(0.5, proxy.clear)
        timer.start()
        took = _timed_query(conn)
        assert 0.4 <= took < 5
        # AND the session is intact: nothing was lost or reordered
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
    # THEN stopping the proxy closes the connections it carried
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
