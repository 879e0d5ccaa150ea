"""The PgBouncer collector against a real pooler in transaction mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm.loadtests.locust_plugin.collectors.pgbouncer import PgBouncerCollector
from connstorm.samples import SampleWriter
from connstorm.scenario import load_scenario

pytestmark = pytest.mark.slow

POOL = 2
CLIENTS = 6


@pytest.fixture(scope="module")
def pooler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from connstorm.local_stack.pgbouncer import PgBouncerServer
    from connstorm.local_stack.postgres import PostgresServer

    scenario = load_scenario("pgbouncer-transaction", overrides=[
        f"pgbouncer.default_pool_size={POOL}", "postgres.max_connections=10"])
    run_dir = tmp_path_factory.mktemp("pb")
    with PostgresServer(scenario.postgres, run_dir) as pg, \
            PgBouncerServer(scenario.pgbouncer, pg, run_dir) as pb:
        yield pb


LOCK_KEY = 4242


def _blocked_client(dsn: str, errors: list[BaseException]) -> None:
    """One transaction that waits on an advisory lock the test holds."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    except BaseException as exc:
        errors.append(exc)


def test_pgbouncer_collector_sees_clients_wait_for_a_small_pool(pooler: Any,
                                                                tmp_path: Path) -> None:
    # GIVEN the pool's server connections are held by clients blocked on a lock we hold,
    # so the pool stays full for as long as the test looks (no race with finishing clients)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_blocked_client, args=(pooler.dsn, errors))
               for _ in range(CLIENTS)]
    expected = (POOL, CLIENTS - POOL, POOL)
    # advisory locks are per database: hold it in the clients' database
    with psycopg.connect(pooler.postgres.admin_dsn, dbname="app", autocommit=True) as holder, \
            SampleWriter(tmp_path / "samples.jsonl") as writer:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        collector = PgBouncerCollector(writer, pooler.admin_dsn, database="app")
        for t in threads:
            t.start()
        # WHEN every client is queued behind the pool (bounded wait, no timing assertion)
        deadline = time.monotonic() + 30
        row = collector.tick()
        while (row.get("cl_active"), row.get("cl_waiting"), row.get("sv_active")) != expected \
                and time.monotonic() < deadline:
            time.sleep(0.05)
            row = collector.tick()
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        for t in threads:
            t.join(30)
        # Far more ticks than psycopg's prepare_threshold: the console stays usable.
        later = [collector.tick() for _ in range(8)]
        collector.stop()
    assert not errors
    assert row["ok"] is True
    assert (row["cl_active"], row["cl_waiting"], row["sv_active"]) == expected
    assert row["pool_mode"] == "transaction"
    assert all(r["ok"] for r in later)
    assert later[-1]["cl_waiting"] == 0
    assert later[-1]["total_xact_count"] >= CLIENTS
    assert later[-1]["total_wait_time_us"] > 0
