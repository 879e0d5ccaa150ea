"""A live run's ``summary.json``: the same keys as a local run, filled from CloudWatch.

A live run has no PostgreSQL, PgBouncer or emulator collector (the database
sits in private subnets), so the figures the verdicts and reports read
(``peak_db_connections``, ``cold_starts``, ``throttles``, the functions'
errors by kind...) come from CloudWatch instead: the RDS instance's
``DatabaseConnections`` (peak of the one-minute maxima), Lambda's
``ConcurrentExecutions`` and ``Throttles``, RDS Proxy's client and database
connections (the proxy is the pooler), and the REPORT and error lines of the
logs. ``variants[].series_sources`` says, for every collector of the run, where
its series came from and at what resolution; ``variants[].cloudwatch`` keeps the
window, each metric's points and peak, and the logs' totals. The thresholds are
then checked again on the filled figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connstorm import metric_names as names
from connstorm.loadtests.orchestrator.cloudwatch import Reading
from connstorm.loadtests.orchestrator.cloudwatch_logs import LogFindings
from connstorm.loadtests.orchestrator.cloudwatch_metrics import METRICS
from connstorm.loadtests.orchestrator.proxy_logs import ProxyPins
from connstorm.loadtests.orchestrator.series_sources import series_sources
from connstorm.loadtests.orchestrator.summary import attribute_errors
from connstorm.loadtests.orchestrator.thresholds import check_thresholds
from connstorm.samples import Row
from connstorm.scenario import Scenario


def _peak(reading: Reading, group: str, key: str) -> float | None:
    values = list((reading.points.get((group, key)) or {}).values())
    return max(values) if values else None


def _total(reading: Reading, group: str, key: str) -> float | None:
    values = list((reading.points.get((group, key)) or {}).values())
    return sum(values) if values else None


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def cloudwatch_section(reading: Reading, findings: LogFindings | None, window: tuple[float, float],
                       period_s: int, target: Mapping[str, Any],
                       pins: ProxyPins | None = None) -> dict[str, Any]:
    """``variants[].cloudwatch``: what was read, each metric's points and peak."""
    metrics: dict[str, Any] = {}
    for spec in METRICS:
        series = reading.points.get((spec.group, spec.series_key))
        if series is None:
            continue
        metrics[f"{spec.group}.{spec.series_key}"] = {
            "namespace": spec.namespace, "metric": spec.name, "stat": spec.stat,
            "unit": spec.unit, "points": len(series),
            "peak": max(series.values()) if series else None,
            "total": sum(series.values()) if series and spec.stat == "Sum" else None}
    return {"source": "cloudwatch", "period_s": period_s,
            "window": {"start_t": window[0], "end_t": window[1]},
            "target": dict(target), "api_calls": reading.calls, "metrics": metrics,
            "no_data": sorted(k for k, v in metrics.items() if not v["points"]),
            "unreadable": {f"{group}.{key}": why for (group, key), why
                           in sorted(reading.errors.items())},
            "logs": findings.figures() if findings is not None else None,
            "proxy_log": pins.figures() if pins is not None else None}


def live_db_path(scenario_path: str, connect_mode: str | None) -> str:
    """Where the deployed functions connect: the stack's ``ConnectMode`` output says.

    Without it, a scenario that pools (through PgBouncer locally) is taken to mean
    the proxy, the deployed stack's pooler; there is no PgBouncer on AWS.
    """
    if connect_mode == "direct":
        return "direct"
    if connect_mode == "proxy" or scenario_path == "pgbouncer":
        return "rds_proxy"
    return "direct"


def live_variant_name(name: str, scenario_path: str, connect_mode: str | None) -> str:
    """A local variant name (``pgbouncer-module_level``) as the live run names it
    (``rds_proxy-module_level``): the deployed path, then the pattern."""
    path = live_db_path(scenario_path, connect_mode)
    pattern = name.split("-", 1)[1] if "-" in name else name
    return f"{path}-{pattern}" if pattern else path


def fill_variant(variant: dict[str, Any], reading: Reading,
                 findings: LogFindings | None, connect_mode: str | None = None,
                 pins: ProxyPins | None = None) -> dict[str, Any]:
    """The variant's figures from CloudWatch where no local collector gave them.

    The pinning audit (``pin_reasons``, ``pin_samples``) comes from the proxy's
    log group when it was found (:mod:`.proxy_logs`); without it nothing says
    whether sessions were pinned, so the audit stays as the run left it.
    """
    path = live_db_path(str(variant.get("db_path")), connect_mode)
    name = live_variant_name(str(variant.get("name") or ""), str(variant.get("db_path")),
                             connect_mode)
    variant.update({"db_path": path, "name": name,
                    # RDS Proxy's pool is a share of max_connections, not PgBouncer's size.
                    "pool_mode": None, "pool_size": None})
    sources = variant.get("series_sources") or {}
    if "postgres" not in sources or sources["postgres"].get("source") != "local":
        peak = _int(_peak(reading, "rds", "DatabaseConnections"))
        if peak is not None:
            variant["peak_db_connections"] = peak
    concurrency = _int(_peak(reading, "lambda", "ConcurrentExecutions"))
    if concurrency is not None:
        variant["peak_concurrency"] = concurrency
        variant["peak_environments"] = concurrency
    throttles = _int(_total(reading, "lambda", "Throttles"))
    if throttles is not None:
        variant["throttles"] = throttles
    clients = _int(_peak(reading, "rds_proxy", names.CLIENT_CONNECTIONS))
    if clients is not None:
        variant["peak_pooler_clients"] = clients
    server = _int(_peak(reading, "rds_proxy", names.DATABASE_CONNECTIONS))
    if server is not None:
        variant["peak_pooler_server_connections"] = server
    if pins is not None and pins.found:
        variant["pin_reasons"] = dict(pins.pin_reasons)
        variant["pin_samples"] = dict(pins.pin_samples)
    if findings is not None:
        variant["cold_starts"] = findings.cold_starts
        kinds = findings.errors_by_kind()
        variant["invocation_errors_by_kind"] = kinds
        variant["errors_by_kind"] = attribute_errors(variant.get("client_errors_by_kind") or {},
                                                     kinds)
    return variant


def live_summary(summary: dict[str, Any], scenario: Scenario, rows: Sequence[Row],
                 reading: Reading, findings: LogFindings | None,
                 window: tuple[float, float], period_s: int,
                 target: Mapping[str, Any], pins: ProxyPins | None = None) -> dict[str, Any]:
    """``summary`` (from :func:`.summary.build_summary`) with CloudWatch's figures."""
    for variant in summary["variants"]:
        variant["series_sources"] = series_sources(rows, scenario.load.sample_interval_s)
        fill_variant(variant, reading, findings, target.get("connect_mode"), pins)
        variant["cloudwatch"] = cloudwatch_section(reading, findings, window, period_s, target,
                                                   pins)
    verdicts = check_thresholds(scenario.thresholds, summary["variants"])
    summary["thresholds"] = verdicts
    summary["passed"] = all(v["passed"] for v in verdicts)
    return summary
