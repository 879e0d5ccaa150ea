"""``session_state`` through the RDS Proxy stand-in, under the real emulator: it pins.

Each execution environment of ``session_state`` sets ``search_path`` and the
time zone on its connection and prepares statements by name, so the stand-in
pins every environment's client session to a database connection for good:
three environments fill a pool of three, and the next function cannot borrow
one (``Timed-out waiting to acquire database connection.``). The resilient
pattern through the same kind of proxy is multiplexed: more environments than
database connections, nothing pinned, every request served.

Concurrency is made deterministic by holding a lock the workload's reads wait
for: N requests blocked at once need N environments.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.config import Config

from connstorm.local_stack.aws_credentials import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario
from tests.handlers import apigw_events

pytestmark = pytest.mark.slow

SCENARIO = """
name = "pinning"
[postgres]
max_connections = 20
superuser_reserved_connections = 3
seed_products = 20
[rds_proxy]
max_connections_percent = 18  # a pool of 3: 18 % of max_connections 20
connection_borrow_timeout_s = {borrow_s}
[lambda]
freeze = true
{functions}
"""
FUNCTION = """
[[functions]]
name = "{name}"
pattern = "{pattern}"
database = "rds_proxy"
timeout_s = 60
"""


def _stack(tmp_path: Path, borrow_s: float, **functions: str) -> Stack:
    source = tmp_path / "pinning.toml"
    source.write_text(SCENARIO.format(borrow_s=borrow_s, functions="".join(
        FUNCTION.format(name=name, pattern=pattern) for name, pattern in functions.items())))
    return Stack(load_scenario(source), tmp_path / "run")


def _invoke(stack: Stack, function: str) -> tuple[int, dict[str, Any]]:
    client = boto3.session.Session().client(
        "lambda", endpoint_url=stack.emulator.invoke_url, region_name="us-east-1",
        aws_access_key_id=DUMMY_ACCESS_KEY, aws_secret_access_key=DUMMY_SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=90))
    answer = client.invoke(FunctionName=function,
                           Payload=json.dumps(apigw_events.v2("GET", "/items/1")))
    payload = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, payload
    return int(payload["statusCode"]), json.loads(payload["body"])


def _wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _burst(stack: Stack, function: str, n: int, ready: Callable[[], bool]
           ) -> list[tuple[int, dict[str, Any]]]:
    """``n`` invocations in flight together (held by a table lock until ``ready()``)."""
    assert stack.postgres is not None
    results: list[tuple[int, dict[str, Any]]] = []
    with psycopg.connect(stack.postgres.app_dsn) as locker:
        locker.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        threads = [threading.Thread(target=lambda: results.append(_invoke(stack, function)))
                   for _ in range(n)]
        for t in threads:
            t.start()
        assert _wait_for(ready, 60), f"{function}: {n} invocations never were in flight together"
    for t in threads:
        t.join(90)
    return results


def _waiting_on_lock(stack: Stack) -> int:
    assert stack.postgres is not None
    with psycopg.connect(stack.postgres.admin_dsn, autocommit=True) as conn:
        row = conn.execute("select count(*) from pg_stat_activity where application_name = "
                           "'connstorm-rds-proxy' and wait_event_type = 'Lock'").fetchone()
    return int(row[0]) if row else 0


def test_session_state_pins_every_environment_and_exhausts_the_pool(tmp_path: Path) -> None:
    with _stack(tmp_path, 2.0, pinning="session_state", other="module_level_resilient") as stack:
        proxy = stack.rds_proxy
        results = _burst(stack, "pinning", 3, lambda: _waiting_on_lock(stack) >= 3)
        assert [status for status, _ in results] == [200] * 3
        metrics = proxy.metrics()
        # The environments are frozen now, and each still holds its database connection.
        assert metrics["DatabaseConnectionsCurrentlySessionPinned"] == 3
        assert metrics["DatabaseConnections"] == 3
        assert metrics["pin_reasons"][pinning.SESSION_SETTINGS]["count"] == 3
        assert "search_path" in metrics["pin_reasons"][pinning.SESSION_SETTINGS]["sample"].lower()
        # Another function cannot borrow a connection: RDS Proxy's error, after the timeout.
        status, body = _invoke(stack, "other")
        assert status == 503
        assert "Timed-out waiting to acquire database connection" in body["error"]
        assert proxy.metrics()["BorrowTimeouts"] >= 1


def test_the_resilient_pattern_is_multiplexed_and_never_pins(tmp_path: Path) -> None:
    with _stack(tmp_path, 60.0, pooled="module_level_resilient") as stack:
        proxy = stack.rds_proxy

        def six_in_flight() -> bool:
            m = proxy.metrics()
            return bool(_waiting_on_lock(stack) >= 3 and m["ClientConnections"] >= 6)

        results = _burst(stack, "pooled", 6, six_in_flight)
        assert [status for status, _ in results] == [200] * 6
        metrics = proxy.metrics()
        assert metrics["ClientConnections"] == 6  # six frozen environments, still connected
        assert metrics["DatabaseConnections"] <= 3  # over at most three database connections
        assert metrics["DatabaseConnectionsCurrentlySessionPinned"] == 0
        assert metrics["DatabaseConnectionsCurrentlyBorrowed"] == 0
        assert metrics["pin_reasons"] == {}
        for _ in range(5):  # warm calls, past psycopg's default prepare threshold
            assert _invoke(stack, "pooled")[0] == 200
        assert proxy.metrics()["pin_reasons"] == {}
