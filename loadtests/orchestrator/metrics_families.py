"""The newest ``samples.jsonl`` row of each collector, as Prometheus metric families.

What ``/metrics`` shows (:mod:`.metrics_endpoint`), named by Prometheus's
conventions (Prometheus, "Metric and label naming"): one ``connstorm_`` prefix,
base units (seconds, not the rows' milliseconds and microseconds), ``_total``
on counters (prometheus_client appends it), one quantity per metric, and labels
for the dimensions of one quantity (state, kind, reason), never for things that
do not add up. RDS Proxy's series keep the CloudWatch metric name ``connstorm
live`` reads as the label ``cloudwatch_metric`` (AWS, "Monitoring RDS Proxy
metrics with Amazon CloudWatch"), so a dashboard can join a local run's series
to a live run's CloudWatch ones.

Every value is the row's value, converted to base units and nothing else: the
endpoint shows exactly what the run folder holds. A collector whose newest row
is a gap (``ok: false``) shows ``connstorm_collector_up 0`` and no values, as an
exporter does for a target it cannot read; ``connstorm_collector_last_sample_
timestamp_seconds`` is the row's ``t``, so a reader can find the row a scrape
showed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from connstorm import metric_names as names
from connstorm.samples import Row

PREFIX = "connstorm"
#: The collectors whose rows become metrics, in the order they are shown.
COLLECTORS: tuple[str, ...] = ("postgres", "pgbouncer", "rds_proxy", "emulator", "locust")
#: The label carrying RDS Proxy's CloudWatch metric name.
CLOUDWATCH_LABEL = "cloudwatch_metric"
#: Locust's latency percentiles: row key -> ``quantile`` label.
QUANTILES: tuple[tuple[str, str], ...] = (("p50_ms", "0.5"), ("p95_ms", "0.95"),
                                          ("p99_ms", "0.99"))

Kind = str  # "gauge" or "counter"

#: RDS Proxy: CloudWatch name -> (metric name after ``connstorm_rds_proxy_``, kind, scale).
RDS_PROXY_METRICS: dict[str, tuple[str, Kind, float]] = {
    names.CLIENT_CONNECTIONS: ("client_connections", "gauge", 1.0),
    names.DATABASE_CONNECTIONS: ("database_connections", "gauge", 1.0),
    names.DATABASE_CONNECTIONS_BORROWED: ("database_connections_borrowed", "gauge", 1.0),
    names.DATABASE_CONNECTIONS_IN_TRANSACTION: ("database_connections_in_transaction", "gauge",
                                                1.0),
    names.DATABASE_CONNECTIONS_PINNED: ("database_connections_pinned", "gauge", 1.0),
    names.MAX_DATABASE_CONNECTIONS: ("database_connections_max", "gauge", 1.0),
    names.BORROW_LATENCY: ("borrow_latency_seconds", "gauge", 1e-6),
    names.QUERY_DATABASE_RESPONSE_LATENCY: ("query_database_response_latency_seconds", "gauge",
                                            1e-6),
    names.SETUP_SUCCEEDED: ("client_connections_setup_succeeded", "counter", 1.0),
    names.SETUP_FAILED_AUTH: ("client_connections_setup_failed_auth", "counter", 1.0),
    names.QUERY_REQUESTS: ("query_requests", "counter", 1.0),
    names.DATABASE_CONNECTION_REQUESTS: ("database_connection_requests", "counter", 1.0),
    names.DATABASE_SETUP_SUCCEEDED: ("database_connections_setup_succeeded", "counter", 1.0),
    names.DATABASE_SETUP_FAILED: ("database_connections_setup_failed", "counter", 1.0),
}
#: connstorm's own RDS Proxy counters (no CloudWatch name, so no label).
RDS_PROXY_OWN: dict[str, str] = {names.BORROW_TIMEOUTS: "borrow_timeouts",
                                 names.IDLE_CLIENTS_CLOSED: "idle_clients_closed",
                                 names.PREPARED_STATEMENTS_INJECTED: "prepared_statements_injected",
                                 names.CANCEL_REQUESTS_IGNORED: "cancel_requests_ignored"}
#: Emulator row key -> (metric name after ``connstorm_lambda_``, kind).
LAMBDA_METRICS: dict[str, tuple[str, Kind]] = {
    names.CONCURRENCY: ("concurrency", "gauge"),
    names.CONCURRENCY_PEAK: ("concurrency_peak", "gauge"),
    "env_reaped": ("environments_reaped", "counter"),
    "invocations": ("invocations", "counter"),
    names.COLD_STARTS: ("cold_starts", "counter"),
    names.THROTTLES: ("throttles", "counter"),
    "timeouts": ("timeouts", "counter"),
    # Invocations that did not succeed; the by-kind counts also hold throttles and
    # refusals (no invocation), so they do not add up to this.
    "errors": ("failed_invocations", "counter"),
    "provisioned": ("provisioned_environments", "gauge"),
    "provisioned_busy": ("provisioned_environments_busy", "gauge"),
    "superseded": ("superseded_environments", "gauge"),
    "provisioned_invocations": ("provisioned_invocations", "counter"),
    "spillover_invocations": ("spillover_invocations", "counter"),
    "deploys": ("deploys", "counter"),
    "scheduled_invocations": ("scheduled_invocations", "counter"),
    "rejections": ("rejections", "counter"),
    names.VANISHED_CONNECTIONS: ("vanished_connections", "gauge"),
    names.VANISHED_ENVIRONMENTS: ("vanished_environments", "gauge"),
}
#: The environment states shown (``env_total`` is their sum, ``env_reaped`` a counter).
LAMBDA_ENV_STATES: tuple[str, ...] = ("initializing", "busy", "frozen", "idle", "stopping")


def _number(value: Any) -> float:
    """A row's value as a float; ``None`` (a figure not known yet) is NaN."""
    if value is None:
        return math.nan
    return float(value)


def _family(name: str, doc: str, kind: Kind,
            labels: tuple[str, ...] = ()) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=list(labels))
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _one(name: str, doc: str, kind: Kind, value: Any) -> Metric:
    family = _family(name, doc, kind)
    family.add_metric([], _number(value))
    return family


def _by(name: str, doc: str, kind: Kind, label: str, values: Mapping[str, Any]) -> Metric:
    family = _family(name, doc, kind, (label,))
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], _number(value))
    return family


def _by_application(by_app: Mapping[str, Any]) -> dict[str, int]:
    """Connections per application, the environment id cut off (``api:1a2b..`` -> ``api``).

    The handlers name each connection ``<function>:<environment>``; one series
    per environment would be a label of unbounded values, so they are summed per
    function.
    """
    out: dict[str, int] = {}
    for app, count in by_app.items():
        prefix = app.rpartition(":")[0] or app
        out[prefix] = out.get(prefix, 0) + int(count)
    return out


def _postgres(row: Row) -> Iterator[Metric]:
    p = f"{PREFIX}_postgres"
    yield _by(f"{p}_connections", "Client backends in pg_stat_activity, by state", "gauge",
              "state", row.get("db_by_state") or {})
    yield _by(f"{p}_application_connections", "Client backends by application_name, the "
              "environment id cut off", "gauge", "application",
              _by_application(row.get("db_by_app") or {}))
    yield _one(f"{p}_app_role_connections", "Client backends of the application role", "gauge",
               row.get("db_app"))
    yield _one(f"{p}_max_connections", "The server's max_connections", "gauge",
               row.get("max_connections"))
    yield _one(f"{p}_superuser_reserved_connections", "Slots only a superuser may take", "gauge",
               row.get("superuser_reserved_connections"))


def _pgbouncer(row: Row) -> Iterator[Metric]:
    p = f"{PREFIX}_pgbouncer"
    yield _by(f"{p}_client_connections", "Clients of the application database's pools "
              "(SHOW POOLS cl_*), by state", "gauge", "state",
              {"active": row.get(names.CL_ACTIVE), "waiting": row.get(names.CL_WAITING)})
    yield _by(f"{p}_server_connections", "Server connections of the pools (SHOW POOLS sv_*), "
              "by state", "gauge", "state",
              {key.removeprefix("sv_"): row.get(key) for key in names.PGBOUNCER_SERVERS})
    yield _one(f"{p}_max_wait_seconds", "The longest wait of a queued client", "gauge",
               row.get(names.MAXWAIT_S))
    yield _one(f"{p}_transactions", "Transactions pooled (SHOW STATS)", "counter",
               row.get(names.TOTAL_XACT_COUNT))
    yield _one(f"{p}_queries", "Queries pooled (SHOW STATS)", "counter",
               row.get(names.TOTAL_QUERY_COUNT))
    yield _one(f"{p}_wait_time_seconds", "Time clients waited for a server connection "
               "(SHOW STATS)", "counter", _number(row.get(names.TOTAL_WAIT_TIME_US)) * 1e-6)
    info = InfoMetricFamily(f"{p}_pool", "The pools' pool_mode")
    info.add_metric([], {"pool_mode": str(row.get(names.POOL_MODE) or "")})
    yield info


def _rds_proxy(row: Row) -> Iterator[Metric]:
    p = f"{PREFIX}_rds_proxy"
    for cloudwatch, (suffix, kind, scale) in RDS_PROXY_METRICS.items():
        if cloudwatch not in row:
            continue  # QueryDatabaseResponseLatency: CloudWatch has it, the stand-in not
        family = _family(f"{p}_{suffix}", f"RDS Proxy's {cloudwatch}", kind, (CLOUDWATCH_LABEL,))
        family.add_metric([cloudwatch], _number(row.get(cloudwatch)) * scale)
        yield family
    for key, suffix in RDS_PROXY_OWN.items():
        yield _one(f"{p}_{suffix}", f"connstorm's {key} (no CloudWatch metric)", "counter",
                   row.get(key))
    reasons = row.get(names.PIN_REASONS) or {}
    yield _by(f"{p}_pins", "Client sessions pinned, by reason in RDS Proxy's words", "counter",
              "reason", {reason: entry.get("count") for reason, entry in reasons.items()})


def _emulator(row: Row) -> Iterator[Metric]:
    p = f"{PREFIX}_lambda"
    yield _by(f"{p}_environments", "Execution environments alive, by state", "gauge", "state",
              {state: row.get(f"env_{state}") for state in LAMBDA_ENV_STATES})
    for key, (suffix, kind) in LAMBDA_METRICS.items():
        if key in row:  # rows of an older connstorm lack the newer keys
            yield _one(f"{p}_{suffix}", f"The emulator's {key}", kind, row[key])
    yield _by(f"{p}_errors", "Errors by kind (failed invocations, throttles, refusals)",
              "counter", "kind",
              row.get(names.ERRORS_BY_KIND) or {})


def _locust(row: Row) -> Iterator[Metric]:
    p = f"{PREFIX}_load"
    yield _one(f"{p}_users", "Simulated users running", "gauge", row.get("users"))
    yield _one(f"{p}_workers", "Locust workers connected", "gauge", row.get("workers"))
    yield _one(f"{p}_requests", "Requests sent, all workers", "counter", row.get("requests"))
    yield _one(f"{p}_failures", "Requests failed, all workers", "counter", row.get("failures"))
    yield _by(f"{p}_errors", "Failed requests, by kind", "counter", "kind",
              row.get("errors_by_kind") or {})
    # A gauge, not a summary: Locust's percentiles cover a ~10 s sliding window,
    # with no sum or count of their own.
    yield _by(f"{p}_response_time_seconds", "Response time percentiles over Locust's sliding "
              "window (NaN before the first request)", "gauge", "quantile",
              {quantile: (None if row.get(key) is None else _number(row.get(key)) * 1e-3)
               for key, quantile in QUANTILES})
    info = InfoMetricFamily(f"{p}_runner", "Locust's runner state")
    info.add_metric([], {"state": str(row.get("state") or "")})
    yield info


BUILDERS: dict[str, Callable[[Row], Iterator[Metric]]] = {
    "postgres": _postgres, "pgbouncer": _pgbouncer, "rds_proxy": _rds_proxy,
    "emulator": _emulator, "locust": _locust,
}


def families(latest: Mapping[str, Row]) -> Iterator[Metric]:
    """Every metric family the newest rows give (see the module's docstring)."""
    up = GaugeMetricFamily(f"{PREFIX}_collector_up", "1 when the collector's newest sample "
                           "read its target, 0 for a gap", labels=["collector"])
    stamp = GaugeMetricFamily(f"{PREFIX}_collector_last_sample_timestamp_seconds",
                              "Unix time of the collector's newest sample (its row's t)",
                              labels=["collector"])
    present = [name for name in COLLECTORS if name in latest]
    for name in present:
        up.add_metric([name], 1.0 if latest[name].get("ok") else 0.0)
        stamp.add_metric([name], _number(latest[name].get("t")))
    yield up
    yield stamp
    for name in present:
        if latest[name].get("ok"):
            yield from BUILDERS[name](latest[name])
