"""Session isolation and bad input: nothing leaks between clients, nothing stops the proxy."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connstorm.local_stack.pgbouncer import PgBouncerServer
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.rds_proxy.proxy import RdsProxy
from tests.local_stack.rds_proxy.conftest import client_dsn, proxy_backends

pytestmark = pytest.mark.slow

MakeProxy = Callable[..., RdsProxy]

_STATE = [
    "set statement_timeout = 12345",
    "set search_path = pg_catalog",
    "prepare leaked as select 1",
    "create temp table leaked (x int)",
]
_PROBES: list[tuple[str, Callable[[str], bool]]] = [
    ("show statement_timeout", lambda v: v != "12345ms"),
    ("show search_path", lambda v: v != "pg_catalog"),
    ("select count(*)::text from pg_prepared_statements where name = 'leaked'",
     lambda v: v == "0"),
    ("select count(*)::text from pg_class where relname = 'leaked' "
     "and relnamespace = pg_my_temp_schema()",
     lambda v: v == "0"),
]


def leaked_state(dsn: str) -> list[str]:
    """Leave session state on a connection, then look for it from other clients.

    (Not the time zone: PgBouncer tracks TimeZone itself and would not leak it.)

    The first client stays connected and idle while the others look, so a pool
    of one (PgBouncer, transaction mode) hands them its very server connection.
    """
    leaks: list[str] = []
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as first:
        for sql in _STATE:
            first.execute(sql)  # type: ignore[arg-type]
        for probe, clean in _PROBES:
            with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as other:
                row = other.execute(probe).fetchone()  # type: ignore[arg-type]
                value = str(row[0]) if row else ""
                if not clean(value):
                    leaks.append(f"{probe} -> {value}")
    return leaks


def test_no_session_state_leaks_between_clients(pg: PostgresServer, make_proxy: MakeProxy,
                                                pgbouncer_factory: Callable[..., PgBouncerServer]
                                                ) -> None:
    proxy = make_proxy(pg, pool_size=2, connection_borrow_timeout_s=5)
    assert leaked_state(client_dsn(proxy, pg)) == []
    # The same check fails with PgBouncer in transaction mode: the test has teeth.
    bouncer = pgbouncer_factory(pg, pool_mode="transaction", default_pool_size=1)
    assert len(leaked_state(bouncer.dsn)) == len(_PROBES)


def _raw(proxy: RdsProxy, packet: bytes) -> bytes:
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(packet)
        chunks = []
        while data := sock.recv(4096):
            chunks.append(data)
        return b"".join(chunks)


def _still_serves(proxy: RdsProxy, pg: PostgresServer) -> None:
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_malformed_startup_packets_get_a_clear_error(pg: PostgresServer,
                                                     make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, pool_size=2)
    answer = _raw(proxy, struct.pack("!i", 3) + b"garbage")
    assert answer[:1] == b"E"
    assert b"C08P01" in answer
    assert b"invalid startup packet" in answer
    answer = _raw(proxy, struct.pack("!ii", 8, 2 << 16))
    assert b"C0A000" in answer
    assert b"unsupported frontend protocol 2.0" in answer
    _still_serves(proxy, pg)


@pytest.mark.parametrize(("change", "match"), [
    ({"dbname": "no_such_db"}, 'database "no_such_db" does not exist'),
    ({"options": "-c search_path=x"}, "doesn't support command-line options"),
])
def test_unknown_database_and_startup_options_are_refused(
        pg: PostgresServer, make_proxy: MakeProxy, change: dict[str, Any], match: str) -> None:
    proxy = make_proxy(pg, pool_size=2)
    kwargs: dict[str, Any] = {"host": proxy.host, "port": proxy.port, "user": pg.app_user,
                              "password": pg.app_password, "dbname": pg.app_dbname, **change}
    with pytest.raises(psycopg.OperationalError, match=match):
        psycopg.connect(**kwargs)
    _still_serves(proxy, pg)


def test_a_client_gone_mid_transaction_never_leaves_a_dirty_connection(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, pool_size=1, connection_borrow_timeout_s=10)
    dsn = client_dsn(proxy, pg)
    conn = psycopg.connect(dsn)
    conn.execute("insert into rdsp_rows values (-99)")  # opens a transaction
    dirty_pid = conn.info.backend_pid
    sock = socket.socket(fileno=conn.pgconn.socket)
    sock.shutdown(socket.SHUT_RDWR)  # vanish without Terminate, mid-transaction
    sock.detach()
    with psycopg.connect(dsn, autocommit=True) as other:
        row = other.execute("select pg_backend_pid(), txid_current_if_assigned(), "
                            "(select count(*) from rdsp_rows where id = -99)").fetchone()
    assert row is not None
    assert row[1] is None
    assert row[2] == 0
    deadline = time.monotonic() + 10
    while dirty_pid in [p for p, _ in proxy_backends(pg)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dirty_pid not in [p for p, _ in proxy_backends(pg)]
    conn.close()


def test_a_server_restart_fails_clearly_and_the_proxy_keeps_serving(
        postgres_factory: Callable[..., PostgresServer], make_proxy: MakeProxy) -> None:
    server = postgres_factory()
    proxy = make_proxy(server, pool_size=3)
    dsn = client_dsn(proxy, server)
    plain = psycopg.connect(dsn, autocommit=True)
    plain.execute("select 1")
    pinned = psycopg.connect(dsn, autocommit=True)
    pinned.execute("set search_path = public")
    server.restart("fast")
    with pytest.raises(psycopg.OperationalError, match=r"terminating connection|closed"):
        pinned.execute("select 1")
    # The unpinned client held no database connection: its next query gets a new one.
    assert plain.execute("select 2").fetchone() == (2,)
    _still_serves(proxy, server)
    assert proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"] == 0
    plain.close()
    pinned.close()
