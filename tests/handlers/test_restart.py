"""A PostgreSQL restart under a warm environment: resilient recovers, module_level does not.

The server is stopped (fast shutdown: sessions get "terminating connection due
to administrator command") and started again on the same data and port, as a
restart or a failover to the same endpoint looks to a client.
"""

from __future__ import annotations

import json
import signal
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connstorm.handlers.workload import schema
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.process import ManagedProcess
from connstorm.scenario import PostgresConfig
from tests.handlers import apigw_events

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresServer]:
    """A cluster of its own (restarting it must not disturb the shared one)."""
    with PostgresServer(PostgresConfig(), tmp_path / "run") as pg:
        schema.install(pg.app_dsn, 100)
        for k, v in {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": "app",
                     "DB_USER": "app", "DB_PASSWORD": pg.app_password, "DB_SSLMODE": "disable",
                     "DB_CONNECT_TIMEOUT_S": "2", "AWS_LAMBDA_FUNCTION_NAME": "restart"}.items():
            monkeypatch.setenv(k, v)
        yield pg


def _load(name: str) -> types.ModuleType:
    import importlib

    module = f"handlers.{name}_handler"
    if module in sys.modules:
        return importlib.reload(sys.modules[module])
    return importlib.import_module(module)


def _health(module: types.ModuleType) -> tuple[int, dict[str, object]]:
    out = module.lambda_handler(apigw_events.v2("GET", "/health"), None)
    return int(out["statusCode"]), json.loads(out["body"])


def test_restart_resilient_recovers_module_level_does_not(server: PostgresServer) -> None:
    # GIVEN warm environments of both patterns
    resilient, plain = _load("module_level_resilient"), _load("module_level")
    status, before = _health(resilient)
    assert status == 200
    assert _health(plain)[0] == 200
    process = server.process
    assert process is not None
    # WHEN the server goes down
    assert process.terminate(signal.SIGINT, 30)
    # THEN both answer 503 while it is down (no hang: short connect timeout)
    status, body = _health(resilient)
    assert (status, body["kind"]) == (503, "connection_refused")
    assert _health(plain)[0] == 503
    # WHEN it is back on the same data and port
    again = ManagedProcess("postgres (restarted)", process.argv, log_path=process.log_path,
                           run_as=process.run_as, cwd=process.cwd)
    again.start()
    try:
        def answers() -> bool:
            with psycopg.connect(server.app_dsn, connect_timeout=2):
                return True

        again.wait_ready(answers, 30)
        # THEN the resilient environment works again on a new connection
        status, after = _health(resilient)
        assert status == 200
        assert after["connects"] == before["connects"] + 1  # type: ignore[operator]
        # AND module_level stays broken until Lambda recycles its environment
        status, body = _health(plain)
        assert status == 503
        assert body["kind"] in {"admin_shutdown", "connection_lost"}
    finally:
        again.stop(signal.SIGINT, 30)
