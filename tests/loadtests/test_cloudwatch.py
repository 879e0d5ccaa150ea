"""The CloudWatch metrics collector against moto's CloudWatch (server mode, loopback)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connstorm.loadtests.orchestrator.cloudwatch import (
    CloudWatchPoller,
    CloudWatchReader,
    complete,
    floor_to,
    rows,
    wait_for_last_points,
    write_rows,
)
from connstorm.loadtests.orchestrator.cloudwatch_metrics import (
    METRICS,
    Targets,
    api_id_of,
    selected,
)
from connstorm.samples import SampleWriter, read_samples
from tests.moto_server import client, moto_server

TARGETS = Targets(function_name="fn", db_instance_id="db-1", proxy_name="proxy-1")


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


def put(cw: Any, namespace: str, name: str, dimension: tuple[str, str],
        points: list[tuple[float, float]], unit: str = "Count") -> None:
    for first in range(0, len(points), 150):
        cw.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": name, "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
             "Timestamp": datetime.fromtimestamp(t, UTC), "Value": v, "Unit": unit}
            for t, v in points[first:first + 150]])


def test_metrics_put_in_are_read_back_at_their_minutes_over_more_than_500_points(
        moto: str) -> None:
    cw = client(moto, "cloudwatch")
    base = floor_to(time.time(), 60) - 620 * 60
    # 610 one-minute points, minute 300 missing: a gap, not a zero.
    points = [(base + i * 60, float(i % 97)) for i in range(610) if i != 300]
    put(cw, "AWS/Lambda", "ConcurrentExecutions", ("FunctionName", "fn"), points)
    reader = CloudWatchReader(cw, TARGETS)
    reading = reader.read(base, base + 610 * 60)
    series = reading.points[("lambda", "ConcurrentExecutions")]
    assert len(series) == 609
    assert series == dict(points)
    assert base + 300 * 60 not in series
    assert reading.calls >= 1
    # Every other metric was asked for and has no data: present, empty.
    assert reading.points[("lambda", "ProvisionedConcurrencySpilloverInvocations")] == {}
    assert reading.newest("lambda", "ConcurrentExecutions") == points[-1]

    table = rows(reading, reader.groups(), base, base + 610 * 60, 60)
    lam = [(t, v) for t, g, v in table if g == "lambda"]
    assert len(lam) == 610  # one row a minute, the empty minute included
    by_t = dict(lam)
    assert "ConcurrentExecutions" not in by_t[base + 300 * 60]  # the gap
    assert by_t[base + 301 * 60]["ConcurrentExecutions"] == float(301 % 97)
    assert by_t[base]["ConcurrentExecutions"] == 0.0  # a real zero stays a zero
    assert all(v["source"] == "cloudwatch" and v["period_s"] == 60 for _, v in lam)
    assert all("ProvisionedConcurrencySpilloverInvocations" not in v for _, v in lam)


def test_rows_land_in_samples_with_the_data_points_timestamps(moto: str, tmp_path: Path) -> None:
    cw = client(moto, "cloudwatch")
    start = floor_to(time.time(), 60) - 5 * 60
    put(cw, "AWS/RDS", "DatabaseConnections", ("DBInstanceIdentifier", "db-1"),
        [(start + 60, 12.0), (start + 120, 48.0)])
    put(cw, "AWS/RDS", "ClientConnections", ("ProxyName", "proxy-1"), [(start + 120, 300.0)])
    put(cw, "AWS/RDS", "DatabaseConnectionsBorrowLatency", ("ProxyName", "proxy-1"),
        [(start + 120, 850.0)], unit="Microseconds")
    reader = CloudWatchReader(cw, TARGETS)
    reading = reader.read(start, start + 180)
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path, started_at=start) as writer:
        assert write_rows(writer, reading, reader.groups(), start, start + 180, 60) == 9
    got = read_samples(path)
    rds = [r for r in got if r["collector"] == "rds"]
    assert [r["t"] for r in rds] == [start, start + 60, start + 120]
    assert [r["elapsed_s"] for r in rds] == [0, 60, 120]
    assert [r.get("DatabaseConnections") for r in rds] == [None, 12.0, 48.0]
    proxy = [r for r in got if r["collector"] == "rds_proxy"]
    assert proxy[2]["ClientConnections"] == 300.0
    assert proxy[2]["DatabaseConnectionsBorrowLatency"] == 850.0
    # The proxy's DatabaseConnections is not the instance's (other dimension).
    assert "DatabaseConnections" not in proxy[2]


def test_waiting_for_the_last_minute_stops_once_every_series_with_data_has_it(
        moto: str) -> None:
    cw = client(moto, "cloudwatch")
    start = floor_to(time.time(), 60) - 4 * 60
    put(cw, "AWS/Lambda", "Invocations", ("FunctionName", "fn-wait"),
        [(start, 5.0), (start + 60, 7.0)])
    reader = CloudWatchReader(cw, Targets(function_name="fn-wait"))
    ticks: list[tuple[float, int, int]] = []
    reading = wait_for_last_points(reader, start, start + 180, 0.0,
                                   on_tick=lambda *a: ticks.append(a))
    assert complete(reading, start + 180, 60) == (0, 1)  # minute 3 has not arrived
    assert len(ticks) == 1
    assert ticks[0][0] == 0.0
    put(cw, "AWS/Lambda", "Invocations", ("FunctionName", "fn-wait"), [(start + 120, 9.0)])
    reading = wait_for_last_points(reader, start, start + 180, 30.0)
    assert complete(reading, start + 180, 60) == (1, 1)


def test_poller_reads_during_the_run_and_stops(moto: str) -> None:
    cw = client(moto, "cloudwatch")
    now = time.time()
    put(cw, "AWS/Lambda", "Throttles", ("FunctionName", "fn-poll"), [(floor_to(now, 60), 3.0)])
    seen: list[int] = []
    reader = CloudWatchReader(cw, Targets(function_name="fn-poll"))
    with CloudWatchPoller(reader, now - 60, poll_s=0.2, on_reading=lambda r: seen.append(
            len(r.points[("lambda", "Throttles")]))) as poller:
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert seen[:2] == [1, 1]
    assert poller.latest is not None
    assert poller.error is None


def test_catalogue_covers_the_issue_metrics_and_skips_unknown_resources() -> None:
    names = {(m.group, m.name) for m in METRICS}
    for name in ("ConcurrentExecutions", "Invocations", "Errors", "Throttles", "Duration",
                 "ProvisionedConcurrencySpilloverInvocations"):
        assert ("lambda", name) in names
    for name in ("ClientConnections", "DatabaseConnections", "DatabaseConnectionsCurrentlyBorrowed",
                 "DatabaseConnectionsCurrentlySessionPinned", "DatabaseConnectionsBorrowLatency",
                 "QueryDatabaseResponseLatency", "ClientConnectionsSetupFailedAuth"):
        assert ("rds_proxy", name) in names
    rds = ("DatabaseConnections", "CPUUtilization", "FreeableMemory")
    assert {("rds", n) for n in rds} <= names
    assert {("apigateway", n) for n in ("4xx", "5xx", "Latency", "IntegrationLatency",
                                        "Count")} <= names
    durations = {m.series_key: m.stat for m in METRICS if m.name == "Duration"}
    assert durations == {"Duration_p50": "p50", "Duration_p95": "p95", "Duration_max": "Maximum"}
    assert len({(m.group, m.series_key) for m in METRICS}) == len(METRICS)
    assert {spec.group for spec, _ in selected(Targets(function_name="f"))} == {"lambda"}
    assert api_id_of("https://a1b2c3.execute-api.eu-west-1.amazonaws.com") == "a1b2c3"
    assert api_id_of("http://127.0.0.1:8080") is None


def test_a_metric_the_service_refuses_is_a_gap_with_its_reason_the_rest_still_read(
        moto: str) -> None:
    # moto computes no percentile statistic (p50/p95) and answers 500 when one has
    # data; CloudWatch serves them. Either way the other series must survive.
    cw = client(moto, "cloudwatch", attempts=1)
    start = floor_to(time.time(), 60) - 3 * 60
    put(cw, "AWS/Lambda", "Duration", ("FunctionName", "fn-pct"),
        [(start + i, float(i)) for i in range(1, 41)], unit="Milliseconds")
    put(cw, "AWS/Lambda", "Invocations", ("FunctionName", "fn-pct"), [(start, 40.0)])
    reading = CloudWatchReader(cw, Targets(function_name="fn-pct")).read(start, start + 60)
    assert reading.points[("lambda", "Duration_max")] == {start: 40.0}
    assert reading.points[("lambda", "Invocations")] == {start: 40.0}
    assert set(reading.errors) == {("lambda", "Duration_p50"), ("lambda", "Duration_p95")}
    assert reading.points[("lambda", "Duration_p95")] == {}


class PagedCloudWatch:
    """Pure logic: serves get_metric_data in pages the way CloudWatch does (NextToken).

    moto answers in one page whatever the size, so the token loop is checked here.
    """

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.tokens: list[str | None] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        token = kwargs.get("NextToken")
        self.tokens.append(token)
        return self.pages[int(token or 0)]


def test_every_next_token_page_is_followed_and_merged() -> None:
    t0 = 1_700_000_040.0
    pages: list[dict[str, Any]] = [
        {"MetricDataResults": [{"Id": "m0", "Timestamps": [datetime.fromtimestamp(t0, UTC)],
                                "Values": [1.0]}], "NextToken": "1"},
        {"MetricDataResults": [{"Id": "m0", "Timestamps": [datetime.fromtimestamp(t0 + 60, UTC)],
                                "Values": [2.0]},
                               {"Id": "m1", "Timestamps": [datetime.fromtimestamp(t0, UTC)],
                                "Values": [5.0]}], "NextToken": "2"},
        {"MetricDataResults": [{"Id": "m0", "Timestamps": [], "Values": []}]},
    ]
    fake = PagedCloudWatch(pages)
    reading = CloudWatchReader(fake, Targets(function_name="f")).read(t0, t0 + 120)
    assert fake.tokens == [None, "1", "2"]
    assert reading.calls == 3
    assert reading.points[("lambda", "ConcurrentExecutions")] == {t0: 1.0, t0 + 60: 2.0}
    assert reading.points[("lambda", "Invocations")] == {t0: 5.0}


def test_the_local_proxy_stand_in_and_cloudwatch_name_the_charted_series_alike() -> None:
    # The report's RDS Proxy chart reads the same keys from a live run's CloudWatch
    # rows and from the local stand-in's: both must call them the same.
    from connstorm import metric_names as names

    charted = set(names.RDS_PROXY_CHART)
    read_live = {m.series_key for m in METRICS if m.group == "rds_proxy"}
    assert charted <= read_live
    assert charted <= set(names.RDS_PROXY_SNAPSHOT)
    assert names.BORROW_LATENCY in set(names.RDS_PROXY_SNAPSHOT) & read_live
    # What CloudWatch reads is CloudWatch's (never one of connstorm's own counters).
    assert not read_live & set(names.RDS_PROXY_OWN)


def test_a_proxy_served_by_two_instances_is_read_as_their_sum(moto: str) -> None:
    # RDS publishes the proxy's gauges once a minute per instance serving it (AWS,
    # "Monitoring RDS Proxy metrics with Amazon CloudWatch"): two points a minute.
    cw = client(moto, "cloudwatch")
    start = floor_to(time.time(), 60) - 5 * 60
    dim = ("ProxyName", "proxy-two-instances")
    for name, a, b in (("ClientConnections", 120.0, 180.0), ("DatabaseConnections", 7.0, 5.0),
                       ("DatabaseConnectionsCurrentlySessionPinned", 3.0, 4.0)):
        put(cw, "AWS/RDS", name, dim, [(start + 60, a), (start + 61, b)])
    reading = CloudWatchReader(cw, Targets(proxy_name=dim[1])).read(start, start + 180)
    assert reading.points[("rds_proxy", "ClientConnections")] == {start + 60: 300.0}
    assert reading.points[("rds_proxy", "DatabaseConnections")] == {start + 60: 12.0}
    assert reading.points[("rds_proxy", "DatabaseConnectionsCurrentlySessionPinned")] == {
        start + 60: 7.0}
    stats = {m.name: m.stat for m in METRICS if m.group == "rds_proxy"}
    assert stats["ClientConnections"] == stats["DatabaseConnectionsSetupFailed"] == "Sum"
