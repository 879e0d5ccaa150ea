"""Fixtures for the handler tests: a real PostgreSQL with the workload installed.

The cluster is the stack's own :class:`connstorm.local_stack.postgres.PostgresServer`
(run as an unprivileged user, on 127.0.0.1 and a free port, dies with us).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from connstorm.handlers.workload import schema
from connstorm.local_stack.postgres import PostgresServer
from connstorm.scenario import PostgresConfig

PRODUCTS = 1000


@dataclass(frozen=True)
class Pg:
    """A running test cluster: app role ``app`` owning database ``app``."""

    host: str
    port: int
    admin_dsn: str
    app_dsn: str
    app_password: str
    server: PostgresServer


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pg]:
    """One cluster for the session, the workload installed."""
    run_dir = tmp_path_factory.mktemp("pg")
    config = PostgresConfig(max_connections=60, superuser_reserved_connections=3,
                            settings={"max_connections": 60,
                                      "superuser_reserved_connections": 3})
    with PostgresServer(config, Path(run_dir)) as server:
        schema.install(server.app_dsn, PRODUCTS)
        yield Pg(server.host, server.port, server.admin_dsn, server.app_dsn,
                 server.app_password, server)


@pytest.fixture
def db_env(pg: Pg, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The DB_* variables a function gets, set in this process too."""
    env = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": "app", "DB_USER": "app",
           "DB_PASSWORD": pg.app_password, "DB_SSLMODE": "disable",
           "AWS_LAMBDA_FUNCTION_NAME": "api",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/26/[$LATEST]" + secrets.token_hex(16)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@contextlib.contextmanager
def admin(pg: Pg) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit superuser connection to database ``app``."""
    with psycopg.connect(pg.admin_dsn.rsplit("/", 1)[0] + "/app", autocommit=True) as conn:
        yield conn
