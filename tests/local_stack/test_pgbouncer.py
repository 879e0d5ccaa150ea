"""PgBouncer: the pure renderers, and real poolers in front of real PostgreSQL."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm import error_kinds
from connstorm.errors import StackError
from connstorm.local_stack.pgbouncer import (
    PgBouncerServer,
    immediate_shutdown_signal,
    render_auth_file,
    render_ini,
)
from connstorm.local_stack.ports import port_in_use
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.scratch import processes_in
from connstorm.scenario import PgBouncerConfig

POOL = 2
CLIENTS = 3 * POOL


def test_render_ini_puts_managed_settings_first_and_scenario_settings_after() -> None:
    text = render_ini({"pool_mode": "session", "default_pool_size": 7, "log_connections": False},
                      listen_port=6543, db_host="127.0.0.1", db_port=5999, db_name="app",
                      auth_file="/x/userlist.txt")
    lines = text.splitlines()
    assert "app = host=127.0.0.1 port=5999 dbname=app" in lines
    for line in ("listen_addr = 127.0.0.1", "listen_port = 6543", "unix_socket_dir = ",
                 "auth_type = scram-sha-256", "auth_file = /x/userlist.txt",
                 "admin_users = pgbouncer_admin", "pool_mode = session",
                 "default_pool_size = 7", "log_connections = 0"):
        assert line in lines
    assert lines.index("[databases]") < lines.index("[pgbouncer]")


def test_render_ini_lets_the_scenario_override_ignored_startup_parameters() -> None:
    text = render_ini({"ignore_startup_parameters": "extra_float_digits,options"},
                      listen_port=1, db_host="h", db_port=2, db_name="d", auth_file="a")
    assert text.count("ignore_startup_parameters") == 1
    assert "ignore_startup_parameters = extra_float_digits,options" in text


def test_render_auth_file_quotes_users_and_secrets() -> None:
    text = render_auth_file({"app": "SCRAM-SHA-256$4096:abc", 'we"ird': 'pa"ss'})
    assert text == '"app" "SCRAM-SHA-256$4096:abc"\n"we""ird" "pa""ss"\n'


def _app_backends(admin_dsn: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
                           "AND backend_type = 'client backend'").fetchone()
    return int(row[0]) if row else 0


def _pools(pb: PgBouncerServer) -> dict[str, Any]:
    with pb.console() as conn:
        cur = conn.execute("SHOW POOLS")
        names = [c.name for c in cur.description or ()]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return next(r for r in rows if r["database"] == "app")


@pytest.mark.slow
def test_pgbouncer_transaction_mode_bounds_server_connections_to_the_pool(
        postgres_factory: Callable[..., PostgresServer],
        pgbouncer_factory: Callable[..., PgBouncerServer]) -> None:
    # GIVEN transaction pooling with a pool of 2 and 6 concurrent clients
    pg = postgres_factory(max_connections=20)
    pb = pgbouncer_factory(pg, pool_mode="transaction", default_pool_size=POOL)
    results: list[int] = []
    errors: list[BaseException] = []
    peak = 0
    start = threading.Barrier(CLIENTS + 1)

    def client() -> None:
        try:
            with psycopg.connect(pb.dsn, autocommit=True, connect_timeout=10) as conn:
                start.wait(timeout=20)
                for _ in range(3):
                    row = conn.execute("SELECT 1 FROM pg_sleep(0.2)").fetchone()
                    results.append(row[0] if row else 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    start.wait(timeout=20)
    # WHEN they all run queries, pg_stat_activity is watched until they finish
    saw_waiting = False
    while any(t.is_alive() for t in threads):
        peak = max(peak, _app_backends(pg.admin_dsn))
        saw_waiting = saw_waiting or _pools(pb)["cl_waiting"] > 0
        time.sleep(0.02)
    for t in threads:
        t.join()
    # THEN every query completed and the server never saw more than the pool
    assert errors == []
    assert results == [1] * (3 * CLIENTS)
    assert 1 <= peak <= POOL
    assert saw_waiting


@pytest.mark.slow
def test_pgbouncer_session_mode_full_pool_gives_query_wait_timeout(
        postgres_factory: Callable[..., PostgresServer],
        pgbouncer_factory: Callable[..., PgBouncerServer]) -> None:
    # GIVEN session pooling with one server connection, already taken by a client
    pg = postgres_factory()
    pb = pgbouncer_factory(pg, pool_mode="session", default_pool_size=1, query_wait_timeout=1)
    with psycopg.connect(pb.dsn, autocommit=True) as holder:
        holder.execute("SELECT 1")
        # WHEN a second client logs in and queries
        with psycopg.connect(pb.dsn, autocommit=True, connect_timeout=10) as extra, \
                pytest.raises(psycopg.Error) as err:
            extra.execute("SELECT 1")
    # THEN it waited for the pool and failed with query_wait_timeout, classified so
    assert "query_wait_timeout" in str(err.value)
    assert error_kinds.classify_exception(err.value) == error_kinds.POOL_QUERY_WAIT_TIMEOUT


@pytest.mark.slow
def test_pgbouncer_past_max_client_conn_is_classified(
        postgres_factory: Callable[..., PostgresServer],
        pgbouncer_factory: Callable[..., PgBouncerServer]) -> None:
    pg = postgres_factory()
    pb = pgbouncer_factory(pg, max_client_conn=4)
    opened: list[psycopg.Connection[Any]] = []
    try:
        with pytest.raises(psycopg.OperationalError) as err:  # noqa: PT012
            for _ in range(10):
                opened.append(psycopg.connect(pb.dsn, autocommit=True, connect_timeout=10))
        assert len(opened) == 4
        assert error_kinds.classify_exception(err.value) == error_kinds.POOL_MAX_CLIENT_CONN
    finally:
        for conn in opened:
            conn.close()


@pytest.mark.slow
def test_pgbouncer_stops_even_with_clients_holding_the_session_pool(
        postgres_server: PostgresServer, tmp_run_dir: Path) -> None:
    config = PgBouncerConfig(settings={"pool_mode": "session"})
    server = PgBouncerServer(config, postgres_server, tmp_run_dir, stop_timeout_s=0.5)
    with server:
        folder = tmp_run_dir / ".stack-pgbouncer"
        scratch = Path(folder.read_text().strip()) if folder.is_file() else folder
        client = psycopg.connect(server.dsn, autocommit=True)
        client.execute("SELECT 1")
    # the immediate shutdown does not wait for the session client
    assert not processes_in(scratch)
    assert not scratch.exists()
    assert not port_in_use(server.port)
    client.close()


@pytest.mark.slow
def test_pgbouncer_bad_setting_fails_with_log_tail(postgres_server: PostgresServer,
                                                   tmp_run_dir: Path) -> None:
    config = PgBouncerConfig(settings={"pool_mode": "sometimes"})
    with pytest.raises(StackError, match=r"(?s)pgbouncer exited.*for parameter pool_mode") as err, \
            PgBouncerServer(config, postgres_server, tmp_run_dir):
        pass
    assert "pgbouncer.log" in str(err.value)
    assert not (tmp_run_dir / ".stack-pgbouncer").exists()


@pytest.mark.parametrize(("version", "expected"), [
    ("1.18.0", signal.SIGTERM), ("1.22.1", signal.SIGTERM), ("1.23.0", signal.SIGQUIT),
    ("1.24.1", signal.SIGQUIT), ("2.0", signal.SIGQUIT), (None, signal.SIGTERM),
    ("unknown", signal.SIGTERM)])
def test_pgbouncer_immediate_shutdown_signal_follows_the_1_23_change(
        version: str | None, expected: signal.Signals) -> None:
    assert immediate_shutdown_signal(version) == expected
