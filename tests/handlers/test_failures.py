"""How the patterns fail, in this process against a real PostgreSQL.

The idle-session timeout is what a server (or a proxy's idle timeout) does to
the connection of an environment that stayed frozen too long; a role's
connection limit refuses connects with the same 53300 as ``max_connections``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import types
from collections.abc import Iterator

import psycopg
import pytest

from tests.handlers import apigw_events
from tests.handlers.conftest import Pg, admin

ROLE = "limited"
PASSWORD = "limited-password"


@pytest.fixture
def limited_role(pg: Pg, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A role whose idle sessions end after 300 ms and that may hold 1 connection."""
    with admin(pg) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' CONNECTION LIMIT 1")
        conn.execute(f"ALTER ROLE {ROLE} SET idle_session_timeout = '300ms'")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}")
    for k, v in {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": "app",
                 "DB_USER": ROLE, "DB_PASSWORD": PASSWORD, "DB_SSLMODE": "disable",
                 "AWS_LAMBDA_FUNCTION_NAME": "failing"}.items():
        monkeypatch.setenv(k, v)
    try:
        yield ROLE
    finally:
        with admin(pg) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = %s", (ROLE,))
        # pg_terminate_backend only signals: wait until the slots are really free.
        assert _wait(lambda: _sessions(pg) == 0)
        with admin(pg) as conn:
            conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
            conn.execute(f"DROP ROLE {ROLE}")


def _call(module: types.ModuleType, path: str = "/items/1") -> tuple[int, dict[str, object]]:
    out = module.lambda_handler(apigw_events.v2("GET", path), None)
    return int(out["statusCode"]), json.loads(out["body"])


def _sessions(pg: Pg) -> int:
    with admin(pg) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                           (ROLE,)).fetchone()
    assert row is not None
    return int(row[0])


def _load(name: str) -> types.ModuleType:
    """Import the handler afresh (its Init runs exactly once)."""
    module = f"handlers.{name}_handler"
    if module in sys.modules:
        return importlib.reload(sys.modules[module])
    return importlib.import_module(module)


def test_resilient_reconnects_after_idle_session_timeout(pg: Pg, limited_role: str) -> None:
    h = _load("module_level_resilient")
    status, before = _call(h, "/health")
    assert status == 200
    # WHEN the server ends the idle session (as after a long freeze)
    assert _wait(lambda: _sessions(pg) == 0)
    # THEN the next invocation succeeds on a new connection
    status, after = _call(h, "/health")
    assert status == 200
    assert after["connects"] == before["connects"] + 1  # type: ignore[operator]


def test_module_level_fails_after_idle_session_timeout(pg: Pg, limited_role: str) -> None:
    h = _load("module_level")
    assert _call(h)[0] == 200
    assert _wait(lambda: _sessions(pg) == 0)
    status, body = _call(h)
    assert status == 503
    assert body["kind"] in {"idle_session_timeout", "connection_lost"}
    assert _call(h)[0] == 503  # and stays broken


def test_refused_connect_is_503_too_many_connections(pg: Pg, limited_role: str) -> None:
    # GIVEN the role's only slot taken
    with psycopg.connect(host=pg.host, port=pg.port, dbname="app", user=ROLE,
                         password=PASSWORD, options="-c idle_session_timeout=0"):
        for pattern in ("per_invocation", "module_level_resilient"):
            h = _load(pattern)
            status, body = _call(h)
            assert status == 503, pattern
            assert body["kind"] == "too_many_connections"
            assert "too many connections for role" in str(body["error"])
        # AND module_level cannot even finish Init (Lambda reports Runtime.InitError)
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            _load("module_level")


def _wait(check: object, timeout_s: float = 10.0) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())
