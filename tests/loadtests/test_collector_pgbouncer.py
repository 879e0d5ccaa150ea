"""The PgBouncer collector against a real pooler in transaction mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm.scenario import load_scenario
from loadtests.collectors.pgbouncer import PgBouncerCollector
from loadtests.samples import SampleWriter

pytestmark = pytest.mark.slow

POOL = 2
CLIENTS = 6


@pytest.fixture(scope="module")
def pooler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from local_stack.pgbouncer import PgBouncerServer
    from local_stack.postgres import PostgresServer

    scenario = load_scenario("pgbouncer-transaction", overrides=[
        f"pgbouncer.default_pool_size={POOL}", "postgres.max_connections=10"])
    run_dir = tmp_path_factory.mktemp("pb")
    with PostgresServer(scenario.postgres, run_dir) as pg, \
            PgBouncerServer(scenario.pgbouncer, pg, run_dir) as pb:
        yield pb


def _sleeper(dsn: str, seconds: float, errors: list[BaseException]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_sleep(%s)", (seconds,))
    except BaseException as exc:
        errors.append(exc)


def test_pgbouncer_collector_sees_clients_wait_for_a_small_pool(pooler: Any,
                                                                tmp_path: Path) -> None:
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_sleeper, args=(pooler.dsn, 2.0, errors))
               for _ in range(CLIENTS)]
    with SampleWriter(tmp_path / "samples.jsonl") as writer:
        collector = PgBouncerCollector(writer, pooler.admin_dsn, database="app")
        for t in threads:
            t.start()
        # WHEN every client is queued behind the pool (bounded wait, no timing assertion)
        deadline = time.monotonic() + 15
        row = collector.tick()
        while row.get("cl_waiting") != CLIENTS - POOL and time.monotonic() < deadline:
            time.sleep(0.05)
            row = collector.tick()
        for t in threads:
            t.join(30)
        # Far more ticks than psycopg's prepare_threshold: the console stays usable.
        later = [collector.tick() for _ in range(8)]
        collector.stop()
    assert not errors
    assert row["ok"] is True
    assert (row["cl_active"], row["cl_waiting"], row["sv_active"]) == (POOL, CLIENTS - POOL, POOL)
    assert row["pool_mode"] == "transaction"
    assert all(r["ok"] for r in later)
    assert later[-1]["cl_waiting"] == 0
    assert later[-1]["total_xact_count"] >= CLIENTS
    assert later[-1]["total_wait_time_us"] > 0
