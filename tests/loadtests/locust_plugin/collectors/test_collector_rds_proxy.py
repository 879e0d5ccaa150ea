"""The RDS Proxy collector against the stand-in running in a process of its own."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connstorm import metric_names as names
from connstorm.loadtests.locust_plugin.collectors.rds_proxy import (
    RdsProxyCollector,
    snapshot_to_row,
)
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.rds_proxy.process import RdsProxyProcess
from connstorm.samples import SampleWriter, read_samples
from connstorm.scenario import load_scenario
from connstorm.sections.rds_proxy import RdsProxyConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    scenario = load_scenario("direct-small")
    with PostgresServer(scenario.postgres, tmp_path_factory.mktemp("pg"), source="test") as s:
        yield s


def test_collector_reads_the_metric_series_of_a_proxy_in_another_process(
        pg: PostgresServer, tmp_path: Path) -> None:
    proxy = RdsProxyProcess(RdsProxyConfig(max_connections_percent=18),
                            upstream_host=pg.host, upstream_port=pg.port, user=pg.app_user,
                            password=pg.app_password or "", work_dir=tmp_path / "proxy")
    path = tmp_path / "samples.jsonl"
    with proxy, SampleWriter(path) as writer:
        collector = RdsProxyCollector(writer, proxy.metrics_url, interval_s=0.2)
        dsn = proxy.dsn(pg.app_user, pg.app_password, pg.app_dbname)
        with psycopg.connect(dsn, autocommit=True) as plain, \
                psycopg.connect(dsn, autocommit=True) as pinned:
            plain.execute("select 1")
            pinned.execute("set search_path = public")
            row = collector.tick()
            with urllib.request.urlopen(proxy.metrics_url, timeout=5) as response:
                emitted = set(json.load(response))
        proxy.stop()  # the proxy is gone: the next sample is a gap, not the end
        gap = collector.tick()
    assert row["ok"] is True
    # Everything the stand-in emits is collected (IdleClientsClosed once was not).
    assert emitted == {*names.RDS_PROXY_SNAPSHOT, names.PIN_REASONS}
    assert emitted <= set(row)
    assert row["ClientConnections"] == 2
    assert row["DatabaseConnectionsCurrentlySessionPinned"] == 1
    assert row["MaxDatabaseConnectionsAllowed"] == 3
    assert row["pin_reasons"][pinning.SESSION_SETTINGS] == {
        "count": 1, "sample": "set search_path = public"}
    assert row["source"] == "stand-in"
    assert gap["ok"] is False
    assert gap["error"]
    assert [r["collector"] for r in read_samples(path)] == ["rds_proxy", "rds_proxy"]


def test_snapshot_to_row_fills_missing_metrics_with_zero() -> None:
    row = snapshot_to_row({"ClientConnections": 4, "pin_reasons": "junk"}, 1.0)
    assert row["ClientConnections"] == 4
    assert row["DatabaseConnections"] == 0
    assert row["pin_reasons"] == {}


def test_collector_refuses_a_non_loopback_url(tmp_path: Path) -> None:
    with SampleWriter(tmp_path / "s.jsonl") as writer, pytest.raises(ValueError, match="loopback"):
        RdsProxyCollector(writer, "http://10.0.0.1:9/metrics")
