"""``summary.json``: one run's figures and verdicts, built from its run folder.

Everything comes from files the run left behind (``samples.jsonl``, Locust's
CSVs, ``stack.json``) plus the scenario, so a summary can be rebuilt later from
the folder alone. Keys are the contract in ``docs/run-folder.md``.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connstorm import error_kinds
from connstorm import metric_names as names
from connstorm.failures import classify_failure
from connstorm.loadtests.orchestrator.connection_budget import connection_budget
from connstorm.loadtests.orchestrator.lifecycle_summary import lifecycle_figures
from connstorm.loadtests.orchestrator.recovery import timeline_figures
from connstorm.loadtests.orchestrator.series_sources import series_sources
from connstorm.loadtests.orchestrator.thresholds import check_thresholds
from connstorm.run_folder import (
    LOCUST_FAILURES_CSV,
    LOCUST_STATS_CSV,
    SAMPLES_FILE,
    STACK_FILE,
    load_json,
)
from connstorm.samples import Row, read_samples
from connstorm.scenario import Scenario

#: ``summary.json``'s ``schema_version``: raised only when a key changes meaning or
#: goes (keys are added without it), so a baseline of another version is refused.
SCHEMA_VERSION = 1


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN -> None


def read_locust_totals(run_dir: Path) -> dict[str, Any]:
    """The ``Aggregated`` row of ``locust_stats.csv``: requests, failures, percentiles, rps."""
    path = run_dir / LOCUST_STATS_CSV
    out: dict[str, Any] = {"requests": 0, "failures": 0, "p50_ms": None, "p95_ms": None,
                           "p99_ms": None, "rps": 0.0}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return out
    for row in rows:
        if row.get("Name") == "Aggregated":
            out["requests"] = int(_float(row.get("Request Count")) or 0)
            out["failures"] = int(_float(row.get("Failure Count")) or 0)
            for col, key in (("50%", "p50_ms"), ("95%", "p95_ms"), ("99%", "p99_ms")):
                value = _float(row.get(col))
                out[key] = value if out["requests"] else None
            out["rps"] = round(_float(row.get("Requests/s")) or 0.0, 3)
    return out


def read_locust_errors(run_dir: Path) -> dict[str, int] | None:
    """Failures by kind from ``locust_failures.csv`` (all workers merged); None if absent."""
    path = run_dir / LOCUST_FAILURES_CSV
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return None
    counts: Counter[str] = Counter()
    for row in rows:
        counts[classify_failure(row.get("Error"))] += int(_float(row.get("Occurrences")) or 0)
    return dict(counts)


def attribute_errors(client: Mapping[str, int],
                     invocations: Mapping[str, int]) -> dict[str, int]:
    """Failures by kind, with opaque gateway failures explained by the emulator's records.

    API Gateway hides why a function failed: a handler that died on
    ``too many clients`` during init reaches Locust as a bare ``502 Internal
    Server Error`` (``http_error``), while the emulator's invocation records
    know the kind. Each classified invocation error explains one ``http_error``,
    largest kinds first, so the counts still add up to the requests that failed.
    """
    merged = {k: int(v) for k, v in client.items() if v}
    remaining = merged.pop(error_kinds.HTTP_ERROR, 0)
    for kind, count in sorted(invocations.items(), key=lambda kv: (-kv[1], kv[0])):
        if kind in (error_kinds.HTTP_ERROR, error_kinds.OTHER) or remaining <= 0:
            continue
        take = min(int(count), remaining)
        merged[kind] = merged.get(kind, 0) + take
        remaining -= take
    if remaining:
        merged[error_kinds.HTTP_ERROR] = remaining
    return dict(sorted(merged.items()))


def _peak(rows: Sequence[Row], collector: str, *keys: str) -> int:
    values = [sum(int(r.get(k) or 0) for k in keys)
              for r in rows if r.get("collector") == collector and r.get("ok")]
    return max(values, default=0)


def pin_figures(rows: Sequence[Row]) -> tuple[dict[str, int], dict[str, str]]:
    """({pin reason: count}, {pin reason: sample statement}) from the ``rds_proxy`` rows.

    Counts are cumulative in the proxy; the largest seen per reason is kept, so
    a proxy restart (which starts counting again) does not lose what came before.
    """
    counts: dict[str, int] = {}
    samples: dict[str, str] = {}
    for row in rows:
        reasons = row.get("pin_reasons") if row.get("collector") == "rds_proxy" else None
        if not isinstance(reasons, dict):
            continue
        for reason, entry in reasons.items():
            if isinstance(entry, dict):
                counts[reason] = max(counts.get(reason, 0), int(entry.get("count") or 0))
                samples.setdefault(reason, str(entry.get("sample") or ""))
    return counts, samples


def _counted(rows: Sequence[Row], collector: str, key: str) -> int:
    """The total of a cumulative counter over the run, across restarts of its source.

    A restarted stand-in counts from 0 again: a value below the one before ends a
    segment, and the segments' last values add up.
    """
    total = last = 0
    for row in rows:
        if row.get("collector") != collector or not row.get("ok"):
            continue
        value = int(row.get(key) or 0)
        if value < last:
            total += last
        last = value
    return total + last


def _last(rows: Sequence[Row], collector: str) -> Row:
    for row in reversed(rows):
        if row.get("collector") == collector and row.get("ok"):
            return row
    return {}


def variant_name(scenario: Scenario) -> str:
    """``<db_path>-<pattern>`` of the scenario's first function, e.g. ``direct-module_level``."""
    fn = scenario.functions[0] if scenario.functions else None
    if fn is None:
        return scenario.name
    return f"{db_path(scenario)}-{fn.pattern or fn.handler.rsplit('.', 1)[0]}"


def db_path(scenario: Scenario) -> str:
    """``pgbouncer`` or ``rds_proxy`` when any function goes through one, else ``direct``."""
    if any(fn.database == "pgbouncer" for fn in scenario.functions):
        return "pgbouncer"
    if any(fn.database == "rds_proxy" for fn in scenario.functions):
        return "rds_proxy"
    return "direct"


def build_variant(run_dir: Path, scenario: Scenario, *, name: str | None = None,
                  stack: Mapping[str, Any] | None = None,
                  users: int | None = None,
                  duration_s: float | None = None) -> dict[str, Any]:
    """One ``variants[]`` entry of ``summary.json`` from a run folder.

    ``users`` and ``duration_s`` are the run's ``--users`` and ``--duration`` when
    the command line changed the scenario's.
    """
    rows = read_samples(run_dir / SAMPLES_FILE)
    totals = read_locust_totals(run_dir)
    errors = read_locust_errors(run_dir)
    if errors is None:  # no CSV (e.g. Locust killed): the live counter's last word
        errors = dict(_last(rows, "locust").get("errors_by_kind") or {})
    path = db_path(scenario)
    emulator = _last(rows, "emulator")
    postgres = _last(rows, "postgres")
    stack = stack or {}
    max_connections = postgres.get("max_connections") or stack.get("max_connections")
    fn = scenario.functions[0] if scenario.functions else None
    pin_counts, pin_samples = pin_figures(rows)
    return {
        "name": name or variant_name(scenario),
        "db_path": path,
        "pool_mode": scenario.pgbouncer.pool_mode if path == "pgbouncer" else None,
        "handler": fn.handler if fn else None,
        "requests": totals["requests"],
        "failures": totals["failures"],
        "errors_by_kind": attribute_errors(errors, emulator.get("errors_by_kind") or {}),
        "peak_db_connections": _peak(rows, "postgres", "db_total"),
        "max_connections": max_connections,
        "peak_pooler_clients": _peak(rows, "pgbouncer", *names.PGBOUNCER_CLIENTS),
        "peak_environments": _peak(rows, "emulator", names.ENV_TOTAL),
        # The emulator's own running maximum of busy + initializing environments:
        # exact, where peak_environments is only as fine as the sampling interval.
        "peak_concurrency": _peak(rows, "emulator", names.CONCURRENCY_PEAK),
        "cold_starts": int(emulator.get(names.COLD_STARTS) or 0),
        "throttles": int(emulator.get(names.THROTTLES) or 0),
        "p50_ms": totals["p50_ms"],
        "p95_ms": totals["p95_ms"],
        "p99_ms": totals["p99_ms"],
        "rps": totals["rps"],
        # Added keys (documented in docs/run-folder.md):
        "client_errors_by_kind": {k: v for k, v in sorted(errors.items()) if v},
        "invocation_errors_by_kind": dict(sorted((emulator.get("errors_by_kind") or {}).items())),
        "peak_db_app_connections": _peak(rows, "postgres", "db_app"),
        "peak_pooler_server_connections": _peak(rows, "pgbouncer", *names.PGBOUNCER_SERVERS),
        "peak_pooler_waiting": _peak(rows, "pgbouncer", names.CL_WAITING),
        "peak_proxy_client_connections": _peak(rows, "rds_proxy", names.CLIENT_CONNECTIONS),
        "peak_proxy_database_connections": _peak(rows, "rds_proxy", names.DATABASE_CONNECTIONS),
        "peak_pinned_connections": _peak(rows, "rds_proxy", names.DATABASE_CONNECTIONS_PINNED),
        "proxy_borrow_timeouts": _counted(rows, "rds_proxy", names.BORROW_TIMEOUTS),
        "proxy_idle_clients_closed": _counted(rows, "rds_proxy", names.IDLE_CLIENTS_CLOSED),
        # Connections of reaped environments the servers still held (docs/lambda-vanished.md).
        "peak_vanished_connections": _peak(rows, "emulator", names.VANISHED_CONNECTIONS),
        "proxy_max_connections": stack.get("rds_proxy_max_connections"),
        "pin_reasons": pin_counts,
        "pin_samples": pin_samples,
        "pool_size": (scenario.pgbouncer.default_pool_size + scenario.pgbouncer.reserve_pool_size
                      if path == "pgbouncer" else None),
        "requests_by_worker": dict(_last(rows, "locust").get("requests_by_worker") or {}),
        "sample_gaps": dict(Counter(str(r.get("collector")) for r in rows if not r.get("ok"))),
        "lambda_lifecycle": lifecycle_figures(rows, scenario),
        "timeline": timeline_figures(rows, scenario.timeline),
        "series_sources": series_sources(rows, scenario.load.sample_interval_s),
        "connection_budget": run_budget(scenario, rows, stack, users, duration_s),
    }


def run_budget(scenario: Scenario, rows: Sequence[Row], stack: Mapping[str, Any],
               users: int | None, duration_s: float | None = None) -> dict[str, Any]:
    """The run's connection budget, on the limits its server had.

    The collector's own connection (a superuser's, which still takes an ordinary
    slot) counts as another's: with it, the application had one slot fewer.
    """
    postgres = _last(rows, "postgres")
    limit = postgres.get("max_connections") or stack.get("max_connections")
    reserved = postgres.get("superuser_reserved_connections")
    if reserved is None:
        reserved = stack.get("superuser_reserved_connections")
    return connection_budget(scenario, users=users,
                             max_connections=int(limit) if limit else None,
                             reserved=int(reserved) if reserved is not None else None,
                             other_connections=1 if postgres else 0,
                             duration_s=duration_s)


def build_summary(run_dir: Path, scenario: Scenario, *,
                  skipped: Mapping[str, str] | None = None,
                  users: int | None = None,
                  duration_s: float | None = None) -> dict[str, Any]:
    """The whole ``summary.json`` document of a single-variant run."""
    stack = load_json(run_dir / STACK_FILE)
    variant = build_variant(run_dir, scenario, stack=stack, users=users,
                            duration_s=duration_s)
    verdicts = check_thresholds(scenario.thresholds, [variant])
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "passed": all(v["passed"] for v in verdicts),
        "thresholds": verdicts,
        "variants": [variant],
        "collectors_skipped": dict(skipped or {}),
        # The run's budget; each variant carries its own (a comparison has several).
        "connection_budget": variant["connection_budget"],
        # The pooler's version decides verdicts (prepared statements: 1.21+), so every
        # run records it; reports read the other versions from the servers' logs.
        "versions": {"pgbouncer": stack.get("pgbouncer_version")},
    }
