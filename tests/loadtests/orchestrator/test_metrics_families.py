"""Rows to metric families: names by Prometheus's conventions, values in base units, gaps."""

from __future__ import annotations

import math
import re
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from connstorm import metric_names as names
from connstorm.loadtests.orchestrator.metrics_families import (
    CLOUDWATCH_LABEL,
    LAMBDA_ENV_STATES,
    LAMBDA_METRICS,
    RDS_PROXY_METRICS,
    families,
)

T = 1_796_000_000.25

ROWS: dict[str, dict[str, Any]] = {
    "postgres": {"t": T, "collector": "postgres", "ok": True, "db_total": 9, "db_app": 7,
                 "db_by_state": {"active": 3, "idle": 6},
                 "db_by_app": {"api:1a2b3c4d5e6f": 4, "api:ffeeddccbbaa": 3,
                               "connstorm-collector": 1, "(none)": 1},
                 "max_connections": 20, "superuser_reserved_connections": 3},
    "pgbouncer": {"t": T, "collector": "pgbouncer", "ok": True, "cl_active": 5,
                  "cl_waiting": 2, "sv_active": 4, "sv_idle": 1, "sv_used": 0, "sv_login": 1,
                  "maxwait_s": 0.25, "pool_mode": "transaction", "total_xact_count": 100,
                  "total_query_count": 150, "total_wait_time_us": 2_500_000},
    "rds_proxy": {"t": T, "collector": "rds_proxy", "ok": True,
                  **{name: i + 1 for i, name in enumerate(names.RDS_PROXY_SNAPSHOT)},
                  names.BORROW_LATENCY: 1500,
                  "pin_reasons": {"SQL changed session settings": {"count": 4, "sample": "SET"}},
                  "source": "stand-in", "period_s": 1.0},
    "emulator": {"t": T, "collector": "emulator", "ok": True, "env_initializing": 1,
                 "env_busy": 2, "env_frozen": 3, "env_idle": 0, "env_stopping": 0,
                 "env_total": 6, "env_reaped": 4, "concurrency": 3, "concurrency_peak": 8,
                 "invocations": 50, "cold_starts": 6, "throttles": 1, "timeouts": 0,
                 "errors": 2, "errors_by_kind": {"too_many_connections": 2},
                 **dict.fromkeys(names.EMULATOR_LIFECYCLE, 0),
                 "vanished_connections": 5, "vanished_environments": 2},
    "locust": {"t": T, "collector": "locust", "ok": True, "users": 10, "state": "running",
               "requests": 200, "failures": 3, "rps": 20.0, "fail_per_s": 0.1, "p50_ms": 12.0,
               "p95_ms": 40.0, "p99_ms": None, "errors_by_kind": {"http_error": 3},
               "workers": 0, "requests_by_worker": {}},
}
NAME = re.compile(r"^connstorm_[a-z][a-z0-9_]*$")


class _Rows(Collector):
    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def collect(self) -> Any:
        return families(self.rows)


def scrape(rows: dict[str, dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                     float]:
    """Render as the endpoint does, parse back: {(sample name, labels): value}."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Rows(rows))
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        assert NAME.match(family.name), family.name
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_value_is_the_rows_in_base_units() -> None:
    got = scrape(ROWS)
    assert got[("connstorm_postgres_connections", (("state", "idle"),))] == 6
    # environments' connections summed per function (no label per environment)
    assert got[("connstorm_postgres_application_connections", (("application", "api"),))] == 7
    assert got[("connstorm_postgres_max_connections", ())] == 20
    assert got[("connstorm_pgbouncer_client_connections", (("state", "waiting"),))] == 2
    assert got[("connstorm_pgbouncer_server_connections", (("state", "login"),))] == 1
    assert got[("connstorm_pgbouncer_wait_time_seconds_total", ())] == 2.5  # from µs
    assert got[("connstorm_pgbouncer_pool_info", (("pool_mode", "transaction"),))] == 1
    row = ROWS["rds_proxy"]
    pinned = ("connstorm_rds_proxy_database_connections_pinned",
              ((CLOUDWATCH_LABEL, names.DATABASE_CONNECTIONS_PINNED),))
    assert got[pinned] == row[names.DATABASE_CONNECTIONS_PINNED]
    assert got[("connstorm_rds_proxy_borrow_latency_seconds",
                ((CLOUDWATCH_LABEL, names.BORROW_LATENCY),))] == 0.0015  # from µs
    assert got[("connstorm_rds_proxy_query_requests_total",
                ((CLOUDWATCH_LABEL, names.QUERY_REQUESTS),))] == row[names.QUERY_REQUESTS]
    assert got[("connstorm_rds_proxy_pins_total",
                (("reason", "SQL changed session settings"),))] == 4
    assert got[("connstorm_lambda_environments", (("state", "frozen"),))] == 3
    assert got[("connstorm_lambda_environments_reaped_total", ())] == 4
    assert got[("connstorm_lambda_errors_total", (("kind", "too_many_connections"),))] == 2
    assert got[("connstorm_lambda_vanished_connections", ())] == 5
    assert got[("connstorm_lambda_failed_invocations_total", ())] == 2
    # a key the row lacks (written by an older connstorm) is no series, not a NaN
    older = {**ROWS, "emulator": {k: v for k, v in ROWS["emulator"].items()
                                  if k != "vanished_connections"}}
    assert ("connstorm_lambda_vanished_connections", ()) not in scrape(older)
    assert got[("connstorm_load_requests_total", ())] == 200
    assert got[("connstorm_load_errors_total", (("kind", "http_error"),))] == 3
    assert got[("connstorm_load_response_time_seconds", (("quantile", "0.95"),))] == 0.04
    # a percentile Locust does not know yet is NaN, the series still there
    assert math.isnan(got[("connstorm_load_response_time_seconds", (("quantile", "0.99"),))])
    for collector in ROWS:
        assert got[("connstorm_collector_up", (("collector", collector),))] == 1
        assert got[("connstorm_collector_last_sample_timestamp_seconds",
                    (("collector", collector),))] == T


def test_every_cloudwatch_name_of_the_stand_in_is_a_label() -> None:
    # The names connstorm live reads from CloudWatch, as one label value each.
    labelled = {labels[0][1] for (name, labels) in scrape(ROWS)
                if labels and labels[0][0] == CLOUDWATCH_LABEL}
    assert labelled == set(names.RDS_PROXY_CLOUDWATCH)
    assert set(RDS_PROXY_METRICS) >= set(names.RDS_PROXY_CLOUDWATCH)
    # counters get _total from prometheus_client; everything in seconds says so
    for suffix, _kind, scale in RDS_PROXY_METRICS.values():
        assert (scale != 1.0) == suffix.endswith("_seconds")
        assert not suffix.endswith("_total")  # prometheus_client adds it to counters


def test_a_gap_row_shows_the_collector_down_and_no_stale_values() -> None:
    gap = {**ROWS, "postgres": {"t": T + 1, "collector": "postgres", "ok": False,
                                "error": "connection refused"}}
    got = scrape(gap)
    assert got[("connstorm_collector_up", (("collector", "postgres"),))] == 0
    assert got[("connstorm_collector_last_sample_timestamp_seconds",
                (("collector", "postgres"),))] == T + 1
    assert not [key for key in got if key[0].startswith("connstorm_postgres_")]
    assert got[("connstorm_collector_up", (("collector", "pgbouncer"),))] == 1


def test_no_samples_yet_is_an_empty_but_valid_answer() -> None:
    assert scrape({}) == {}
    # rows of other writers (the timeline) are not metrics
    assert scrape({"timeline": {"t": T, "collector": "timeline", "event": "start"}}) == {}


def test_every_key_of_the_emulator_row_is_shown() -> None:
    # A key added to the emulator's row (metric_names) must get a series here too.
    shown = ({f"env_{s}" for s in LAMBDA_ENV_STATES} | set(LAMBDA_METRICS)
             | {names.ERRORS_BY_KIND, names.ENV_TOTAL})
    assert set(names.EMULATOR_STAT_KEYS) <= shown
