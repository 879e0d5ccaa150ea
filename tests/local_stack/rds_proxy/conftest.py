"""A PostgreSQL for the RDS Proxy stand-in's tests, and a factory of stand-ins in front of it.

``max_connections = 20`` with 3 reserved leaves the app role 17 slots;
``max_connections_percent = 18`` gives a pool of 3 (20 * 18 // 100: RDS takes
the percentage of max_connections itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.rds_proxy.pool import IDLE_AFTER_S
from connstorm.local_stack.rds_proxy.proxy import RdsProxy
from connstorm.scenario import load_scenario
from connstorm.sections.rds_proxy import RdsProxyConfig

POOL_OF_3 = 18


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL per test module (20 connections, 3 reserved)."""
    scenario = load_scenario("direct-small")
    with PostgresServer(scenario.postgres, tmp_path_factory.mktemp("rdsp-pg"),
                        source="test") as server:
        with psycopg.connect(server.app_dsn, autocommit=True) as conn:
            conn.execute("create sequence if not exists rdsp_seq")
            conn.execute("create table if not exists rdsp_rows (id int)")
        yield server


ProxyFactory = Callable[..., RdsProxy]


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., RdsProxy]]:
    """``make_proxy(pg, **rds_proxy_keys)``: a started stand-in; all stopped at the end.

    Besides ``[rds_proxy]`` keys: ``pool_size`` and ``idle_after_s`` (the
    stand-in's test knobs).
    """
    with ExitStack() as stack:
        def make(server: PostgresServer, **keys: Any) -> RdsProxy:
            pool_size = keys.pop("pool_size", None)
            idle_after_s = keys.pop("idle_after_s", IDLE_AFTER_S)
            proxy = RdsProxy(RdsProxyConfig(**keys), upstream_host=server.host,
                             upstream_port=server.port,
                             passwords={server.app_user: server.app_password or ""},
                             pool_size=pool_size, idle_after_s=idle_after_s)
            return stack.enter_context(proxy)
        yield make


def client_dsn(proxy: RdsProxy, server: PostgresServer) -> str:
    """The app role's URL through ``proxy``."""
    return proxy.dsn(server.app_user, server.app_password, server.app_dbname)


def proxy_backends(server: PostgresServer) -> list[tuple[int, str]]:
    """(pid, state) of the stand-in's database connections, from pg_stat_activity."""
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "select pid, coalesce(state, '') from pg_stat_activity "
            "where application_name = 'connstorm-rds-proxy' and backend_type = 'client backend'"
        ).fetchall()
    return [(int(pid), str(state)) for pid, state in rows]
