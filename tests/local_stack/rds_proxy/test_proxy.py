"""The RDS Proxy stand-in with real PostgreSQL and real psycopg clients: pooling and pinning."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.rds_proxy.process import RdsProxyProcess
from connstorm.local_stack.rds_proxy.proxy import RdsProxy
from connstorm.local_stack.rds_proxy.session import BORROW_TIMEOUT_MESSAGE, BORROW_TIMEOUT_SQLSTATE
from connstorm.sections.rds_proxy import RdsProxyConfig
from tests.local_stack.rds_proxy.conftest import POOL_OF_3, client_dsn, proxy_backends

pytestmark = pytest.mark.slow

MakeProxy = Callable[..., RdsProxy]


def test_many_clients_over_a_pool_of_n_keep_at_most_n_database_connections(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    assert proxy.metrics()["MaxDatabaseConnectionsAllowed"] == 3
    dsn = client_dsn(proxy, pg)
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def client() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for i in range(15):
                    with conn.transaction():
                        conn.execute("insert into rdsp_rows values (%s)", (i,))
                        conn.execute("select pg_sleep(0.005)")
        except BaseException as exc:
            errors.append(exc)

    def watch() -> None:
        while not done.is_set():
            seen.append(len(proxy_backends(pg)))
            seen.append(proxy.metrics()["DatabaseConnections"])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    watcher.join(10)
    assert errors == []
    assert seen
    assert max(seen) <= 3
    metrics = proxy.metrics()
    assert metrics["DatabaseConnectionsCurrentlySessionPinned"] == 0
    assert metrics["QueryRequests"] >= 12 * 15 * 2
    assert metrics["ClientConnectionsSetupSucceeded"] >= 12


def _pinning_cases() -> list[tuple[str, str]]:
    big = "select '" + "x" * 17_000 + "'"
    return [
        ("set search_path = public", pinning.SESSION_SETTINGS),
        ("set timezone = 'Pacific/Chatham'", pinning.SESSION_SETTINGS),
        ("select set_config('search_path', 'public', false)", pinning.SESSION_SETTINGS),
        ("prepare rdsp_q as select 1", pinning.PREPARED_STATEMENT),
        ("discard all", pinning.DISCARD),
        ("create temp table rdsp_t (x int)", pinning.TEMPORARY_OBJECT),
        ("create temporary sequence rdsp_s", pinning.TEMPORARY_OBJECT),
        ("create temp view rdsp_v as select 1", pinning.TEMPORARY_OBJECT),
        ("declare rdsp_c cursor with hold for select 1", pinning.CURSOR),
        ("listen rdsp_channel", pinning.LISTEN),
        ("select pg_advisory_lock(42)", pinning.ADVISORY_LOCK),
        ("select nextval('rdsp_seq')", pinning.SEQUENCE_FUNCTION),
        ("select setval('rdsp_seq', 5)", pinning.SEQUENCE_FUNCTION),
        (big, pinning.LARGE_STATEMENT),
    ]


@pytest.mark.parametrize(("sql", "reason"), _pinning_cases(),
                         ids=[r[:40] for r, _ in _pinning_cases()])
def test_each_documented_condition_pins(pg: PostgresServer, make_proxy: MakeProxy, sql: str,
                                        reason: str) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        conn.execute("select 1")
        assert proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"] == 0
        conn.execute(sql)  # type: ignore[arg-type]
        metrics = proxy.metrics()
        assert metrics["DatabaseConnectionsCurrentlySessionPinned"] == 1
        assert metrics["DatabaseConnectionsCurrentlyBorrowed"] == 1
        assert metrics["pin_reasons"][reason]["count"] == 1
        assert metrics["pin_reasons"][reason]["sample"] == " ".join(sql.split())[:300]
    assert [p.reason for p in proxy.pins] == [reason]


def test_load_pins_and_a_named_prepared_statement_does_not(pg: PostgresServer,
                                                           make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    dsn = client_dsn(proxy, pg)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error):  # the role may not load it: it pins all the same
            conn.execute("load 'rdsp_no_such_library'")
        conn.execute("select 1")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select %s::int", (1,), prepare=True)  # Parse with a name: multiplexed
    assert [p.reason for p in proxy.pins] == [pinning.LOAD]


def test_plain_transactions_and_set_local_do_not_pin(pg: PostgresServer,
                                                      make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local statement_timeout = 1000")
            conn.execute("insert into rdsp_rows values (1)")
            conn.execute("update rdsp_rows set id = 2 where id = 1")
            conn.execute("select pg_advisory_xact_lock(7)")
            assert proxy.metrics()["DatabaseConnectionsCurrentlyInTransaction"] == 1
        conn.execute("select 'set search_path = x', %s::text", ("listen y",))
        assert conn.execute("show statement_timeout").fetchone() == ("0",)
        metrics = proxy.metrics()
    assert metrics["DatabaseConnectionsCurrentlySessionPinned"] == 0
    assert metrics["DatabaseConnectionsCurrentlyBorrowed"] == 0
    assert proxy.pins == []


def test_a_pinned_client_keeps_its_connection_until_it_disconnects(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    dsn = client_dsn(proxy, pg)
    pinned = psycopg.connect(dsn, autocommit=True)
    pinned.execute("set search_path = public")
    pid = pinned.execute("select pg_backend_pid()").fetchone()
    others: set[int] = set()
    for _ in range(5):
        with psycopg.connect(dsn, autocommit=True) as other:
            others.add(other.execute("select pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        assert pinned.execute("select pg_backend_pid()").fetchone() == pid
    assert pid is not None
    assert pid[0] not in others
    pinned.close()
    deadline = time.monotonic() + 10
    while (proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"]
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"] == 0
    while pid[0] in [p for p, _ in proxy_backends(pg)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid[0] not in [p for p, _ in proxy_backends(pg)]  # closed, never reused


def test_borrow_timeout_fails_the_query_with_rds_proxys_error(pg: PostgresServer,
                                                            make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3, connection_borrow_timeout_s=1)
    dsn = client_dsn(proxy, pg)
    pinned = [psycopg.connect(dsn, autocommit=True) for _ in range(3)]
    for conn in pinned:
        conn.execute("set search_path = public")
    with psycopg.connect(dsn, autocommit=True) as waiting:
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as info:
            waiting.execute("select 1")
        assert time.monotonic() - started >= 0.9
        assert str(info.value) == BORROW_TIMEOUT_MESSAGE
        assert info.value.sqlstate == BORROW_TIMEOUT_SQLSTATE
        assert proxy.metrics()["BorrowTimeouts"] == 1
        pinned.pop().close()  # a slot frees: the same client connection works again
        assert waiting.execute("select 41 + 1").fetchone() == (42,)
    for conn in pinned:
        conn.close()


def test_idle_clients_are_closed_after_the_idle_client_timeout(pg: PostgresServer,
                                                               make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3, idle_client_timeout_s=1)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        conn.execute("select 1")
        deadline = time.monotonic() + 15
        while proxy.metrics()["IdleClientsClosed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(psycopg.OperationalError, match="idle client timeout"):
            conn.execute("select 1")
    assert proxy.metrics()["ClientConnections"] == 0


def test_authentication_failures_are_counted(pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    wrong = proxy.dsn(pg.app_user, "not-the-password", pg.app_dbname)
    unknown = proxy.dsn("nobody", pg.app_password, pg.app_dbname)
    for dsn in (wrong, unknown):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn)
    with psycopg.connect(client_dsn(proxy, pg)) as conn:
        assert conn.execute("select current_user").fetchone() == (pg.app_user,)
    metrics = proxy.metrics()
    assert metrics["ClientConnectionsSetupFailedAuth"] == 2
    assert metrics["ClientConnectionsSetupSucceeded"] == 1


def test_metrics_endpoint_serves_the_snapshot(pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    with psycopg.connect(client_dsn(proxy, pg)) as conn:
        conn.execute("select 1")
        with urllib.request.urlopen(proxy.metrics_url, timeout=5) as response:
            body = json.load(response)
    assert body["ClientConnections"] == 1
    assert body["MaxDatabaseConnectionsAllowed"] == 3


def test_a_cancel_request_is_ignored_as_rds_proxy_for_postgresql_does(
        pg: PostgresServer, tmp_path: Path) -> None:
    # In a process of its own: libpq's blocking cancel holds this process's GIL
    # while it waits for the proxy to answer, so a proxy thread here could not.
    proxy = RdsProxyProcess(RdsProxyConfig(), upstream_host=pg.host, upstream_port=pg.port,
                            user=pg.app_user, password=pg.app_password or "",
                            work_dir=tmp_path / "proxy", pool_size=2)
    with proxy, psycopg.connect(proxy.dsn(pg.app_user, pg.app_password, pg.app_dbname),
                                autocommit=True) as conn:
        cancelled = threading.Event()

        def cancel_when_running() -> None:
            deadline = time.monotonic() + 20
            while not _sleeping(pg) and time.monotonic() < deadline:
                time.sleep(0.02)
            conn.cancel()
            cancelled.set()

        canceller = threading.Thread(target=cancel_when_running)
        canceller.start()
        # WHEN the client cancels its running query, THEN it runs to its end anyway
        assert conn.execute("select pg_sleep(1.5), 'finished'").fetchone() == ("", "finished")
        canceller.join(30)
        assert cancelled.is_set()
        assert conn.execute("select 1").fetchone() == (1,)  # and the session goes on
        with urllib.request.urlopen(proxy.metrics_url, timeout=5) as response:
            assert json.load(response)["CancelRequestsIgnored"] == 1
    log = (tmp_path / "proxy" / "rds_proxy.log").read_text(encoding="utf-8")
    assert "asked to cancel its running query" in log
    assert "does not support canceling a query from a client" in log


def _sleeping(pg: PostgresServer) -> bool:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as admin:
        row = admin.execute("select count(*) from pg_stat_activity where "
                            "wait_event = 'PgSleep'").fetchone()
    return bool(row and row[0])


def test_init_query_sets_up_each_database_connection_without_pinning(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3,
                       init_query="SET statement_timeout = 4321")
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute("show statement_timeout").fetchone() == ("4321ms",)
    assert proxy.pins == []


def _three_connections_then_idle(proxy: RdsProxy, pg: PostgresServer) -> list[Any]:
    clients = [psycopg.connect(client_dsn(proxy, pg)) for _ in range(3)]
    for conn in clients:
        conn.execute("select 1")  # each holds a transaction open: three connections
    assert proxy.metrics()["DatabaseConnections"] == 3
    for conn in clients:
        conn.commit()
    return clients


def test_idle_database_connections_are_trimmed_to_the_idle_share(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    # A pool of 3 whose idle share is 1 (MaxIdleConnectionsPercent 6 of MaxConnectionsPercent
    # 18), with AWS's five minutes before a connection counts as idle shortened to 1 s.
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3, max_idle_connections_percent=6,
                       idle_after_s=1.0)
    clients = _three_connections_then_idle(proxy, pg)
    deadline = time.monotonic() + 15
    while proxy.metrics()["DatabaseConnections"] > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.metrics()["DatabaseConnections"] == 1
    assert len(proxy_backends(pg)) == 1
    for conn in clients:
        conn.close()


def test_pooled_connections_are_not_idle_before_five_minutes(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    # The same pool with AWS's threshold: the burst's connections stay open after it.
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3, max_idle_connections_percent=6)
    assert proxy.idle_after_s == 300.0
    clients = _three_connections_then_idle(proxy, pg)
    assert proxy.core is not None
    sweeps = proxy.core.sweeps
    deadline = time.monotonic() + 15
    while proxy.core.sweeps < sweeps + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.core.sweeps >= sweeps + 3  # the trimming ran, and left them open
    assert proxy.metrics()["DatabaseConnections"] == 3
    assert len(proxy_backends(pg)) == 3
    for conn in clients:
        conn.close()


def test_copy_from_stdin_is_one_transaction_and_gives_the_connection_back(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        with conn.cursor().copy("COPY rdsp_rows (id) FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((10_000 + i,))
        metrics = proxy.metrics()
        assert metrics["DatabaseConnectionsCurrentlyBorrowed"] == 0  # released at its Z
        row = conn.execute("select count(*) from rdsp_rows where id >= 10000").fetchone()
    assert row == (1000,)
    assert metrics["DatabaseConnectionsCurrentlySessionPinned"] == 0


@pytest.mark.parametrize(("sql", "scope", "pins"), [
    ("select set_config('search_path', 'public', %s)", False, True),  # bound, text format
    ("select set_config('search_path', 'public', %b)", False, True),  # bound, binary format
    ("select set_config(%s, %s, %s)", False, True),
    ("select set_config('search_path', 'public', %s)", True, False),
    ("select set_config('search_path', 'public', %b)", True, False),
])
def test_set_config_pins_with_a_bound_false_and_not_with_true(
        pg: PostgresServer, make_proxy: MakeProxy, sql: str, scope: bool, pins: bool) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    params: tuple[object, ...] = ((scope,) if sql.count("%") == 1
                                  else ("search_path", "public", scope))
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute(sql, params).fetchone() == ("public",)  # type: ignore[arg-type]
        pinned = proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"]
    assert pinned == int(pins)
    assert [p.reason for p in proxy.pins] == ([pinning.SESSION_SETTINGS] if pins else [])


def test_set_config_of_a_prepared_statement_pins_on_the_execution_that_binds_false(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, max_connections_percent=POOL_OF_3)
    sql = "select set_config('statement_timeout', %s, %s)"
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        for _ in range(3):  # a named prepared statement, run with a transaction scope
            conn.execute(sql, ("1000", True), prepare=True)
        assert proxy.pins == []
        conn.execute(sql, ("1000", False), prepare=True)
        assert proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"] == 1
    assert [p.reason for p in proxy.pins] == [pinning.SESSION_SETTINGS]
    assert "set_config" in proxy.pins[0].statement


def test_a_pool_larger_than_the_roles_slots_fails_its_own_logins_and_clients_wait(
        pg: PostgresServer, make_proxy: MakeProxy, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN MaxConnectionsPercent 100: a pool of 20, as RDS computes it from
    # max_connections, where the app role may open 17 (3 are reserved)
    caplog.set_level(logging.WARNING, logger="connstorm.local_stack.rds_proxy")
    proxy = make_proxy(pg, max_connections_percent=100, connection_borrow_timeout_s=60)
    assert proxy.metrics()["MaxDatabaseConnectionsAllowed"] == 20
    assert "more than the 17 connections" in caplog.text
    dsn = client_dsn(proxy, pg)
    done: list[int] = []
    errors: list[BaseException] = []
    release = threading.Event()

    def holder(i: int) -> None:  # holds a transaction, so its connection stays lent
        try:
            with psycopg.connect(dsn) as conn:
                conn.execute("select 1")
                done.append(i)
                release.wait(60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=holder, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    # WHEN the database refuses the proxy's logins beyond the role's slots
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
            proxy.metrics()["DatabaseConnectionsSetupFailed"] >= 1
            and len(done) == proxy.metrics()["DatabaseConnections"]):
        time.sleep(0.05)
    metrics = proxy.metrics()
    # THEN the refusals are counted and the clients beyond them wait, not fail
    assert metrics["DatabaseConnectionsSetupFailed"] >= 1
    assert metrics["DatabaseConnectionsSetupSucceeded"] == metrics["DatabaseConnections"] <= 17
    assert len(done) == metrics["DatabaseConnections"] < 20
    assert errors == []
    release.set()  # the holders commit and leave: the waiting clients get connections
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(done) == list(range(20))
    assert "the database refused a connection of the proxy" in caplog.text
