"""The PostgreSQL collector against a real server: counts, exhaustion, losing its connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm import error_kinds
from connstorm.loadtests.locust_plugin.collectors.postgres import (
    APPLICATION_NAME,
    PostgresCollector,
)
from connstorm.samples import SampleWriter, read_samples
from connstorm.scenario import load_scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from connstorm.local_stack.postgres import PostgresServer

    scenario = load_scenario("direct-small", overrides=[
        "postgres.max_connections=6", "postgres.superuser_reserved_connections=2",
        "pgbouncer.enabled=false"])
    with PostgresServer(scenario.postgres, tmp_path_factory.mktemp("pg")) as pg:
        yield pg


def _connect(dsn: str, name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, application_name=name, connect_timeout=5)


def test_postgres_collector_counts_backends_by_state_and_application(
        server: Any, tmp_path: Path) -> None:
    conns = [_connect(server.app_dsn, "fn-api/env-1"), _connect(server.app_dsn, "fn-api/env-2")]
    busy = _connect(server.app_dsn, "fn-api/env-3")
    busy.autocommit = False
    busy.execute("SELECT 1")  # leaves it "idle in transaction"
    try:
        with SampleWriter(tmp_path / "samples.jsonl") as writer:
            row = PostgresCollector(writer, server.admin_dsn, app_user=server.app_user).tick()
    finally:
        busy.close()
        for c in conns:
            c.close()
    assert row["ok"] is True
    assert row["db_app"] == 3
    assert row["db_total"] == 4  # the collector's own connection counts too
    assert row["db_by_app"] == {"fn-api/env-1": 1, "fn-api/env-2": 1, "fn-api/env-3": 1,
                                APPLICATION_NAME: 1}
    assert row["db_by_state"]["idle in transaction"] == 1
    assert row["db_by_state"]["active"] == 1  # the collector, while it asks
    assert (row["max_connections"], row["superuser_reserved_connections"]) == (6, 2)


def test_postgres_collector_keeps_sampling_when_the_app_role_is_exhausted(
        server: Any, tmp_path: Path) -> None:
    # GIVEN the application role holds every ordinary slot (6 - 2 reserved = 4)
    conns = [_connect(server.app_dsn, f"hog-{i}") for i in range(4)]
    try:
        with pytest.raises(psycopg.OperationalError) as refused:
            _connect(server.app_dsn, "one-too-many")
        assert error_kinds.classify_exception(refused.value) == "too_many_connections"
        # WHEN a collector connects now THEN the reserved slots let it in, and it sees them
        with SampleWriter(tmp_path / "samples.jsonl") as writer:
            collector = PostgresCollector(writer, server.admin_dsn, app_user=server.app_user)
            rows = [collector.tick() for _ in range(3)]
            collector.stop()
    finally:
        for c in conns:
            c.close()
    assert all(r["ok"] for r in rows)
    assert [r["db_app"] for r in rows] == [4, 4, 4]
    assert rows[-1]["db_total"] == 5


def test_postgres_collector_writes_a_gap_when_its_connection_dies_then_reconnects(
        server: Any, tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        collector = PostgresCollector(writer, server.admin_dsn, app_user=server.app_user)
        first = collector.tick()
        with _connect(server.admin_dsn, "killer") as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = %s", (APPLICATION_NAME,))
        gap = collector.tick()
        again = collector.tick()
        collector.stop()
    assert first["ok"] is True
    assert gap["ok"] is False
    assert gap["error"]
    assert again["ok"] is True
    assert [r["ok"] for r in read_samples(path)] == [True, False, True]


def test_postgres_collector_gap_when_nothing_listens(tmp_path: Path) -> None:
    with SampleWriter(tmp_path / "samples.jsonl") as writer:
        row = PostgresCollector(writer, "postgresql://postgres:x@127.0.0.1:9/postgres",
                                connect_timeout_s=1).tick()
    assert row["ok"] is False
    assert error_kinds.classify_message(row["error"]) == "connection_refused"
