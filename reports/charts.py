"""The charts of a report: which series of samples.jsonl each one shows.

Kept apart from the page (:mod:`connstorm.reports.html`) because this is the part with
decisions in it: what a row means, how gaps show, how cumulative counters are
drawn. Each chart is a list of :class:`Series` per run; the page lays the
charts out one per row, and the variants of a comparison one per column.

A sample whose ``ok`` is false is a gap: it becomes ``None`` so the line breaks
there instead of drawing a false value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connstorm import metric_names as names
from connstorm.reports.run_folder import Row, RunData

Value = float | None


@dataclass(frozen=True)
class Series:
    """One line of one chart: its name, its points, and how to draw it."""

    name: str
    x: list[float]
    y: list[Value]
    #: "line", "area" (stacked with the chart's other areas), "limit" (dashed), "bar", or
    #: "points" (a line with markers, for sparse series such as CloudWatch's minutes).
    style: str = "line"
    #: The collector and key it was read from, e.g. "postgres.db_total".
    source: str = ""


@dataclass(frozen=True)
class Chart:
    """One row of the report: a title and how to get its series from a run."""

    key: str
    title: str
    build: Callable[[RunData], list[Series]]
    #: What a cell of this chart says when a run has nothing for it.
    empty: str = "no samples"


def _number(value: Any) -> Value:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _column(rows: Sequence[Row], key: str) -> tuple[list[float], list[Value]]:
    xs = [float(r["elapsed_s"]) for r in rows]
    ys = [_number(r.get(key)) if r.get("ok", True) else None for r in rows]
    return xs, ys


def _simple(run: RunData, collector: str, keys: Sequence[str],
            labels: Mapping[str, str] | None = None, *, always: Sequence[str] = ()
            ) -> list[Series]:
    """A series per key that has at least one value (or is listed in ``always``)."""
    rows = run.series(collector)
    out: list[Series] = []
    for key in keys:
        xs, ys = _column(rows, key)
        if rows and (key in always or any(y for y in ys)):
            out.append(Series((labels or {}).get(key, key), xs, ys,
                              source=f"{collector}.{key}"))
    return out


def _mapping_keys(rows: Sequence[Row], field: str) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        value = row.get(field)
        if isinstance(value, Mapping):
            seen.update(dict.fromkeys(str(k) for k in value))
    return list(seen)


def _mapping_series(rows: Sequence[Row], field: str, key: str) -> tuple[list[float], list[Value]]:
    xs = [float(r["elapsed_s"]) for r in rows]
    ys: list[Value] = []
    for row in rows:
        value = row.get(field)
        if not row.get("ok", True) or not isinstance(value, Mapping):
            ys.append(None)
        else:
            ys.append(_number(value.get(key, 0)))
    return xs, ys


def _limit(rows: Sequence[Row], key: str, name: str, source: str,
           fallback: Any = None) -> list[Series]:
    xs, ys = _column(rows, key)
    if not any(y is not None for y in ys) and isinstance(fallback, int | float) and xs:
        ys = [float(fallback)] * len(xs)
    if not any(y is not None for y in ys):
        return []
    return [Series(name, xs, ys, style="limit", source=source)]


# ---------------------------------------------------------------- the charts


def db_connections(run: RunData) -> list[Series]:
    """Client backends stacked by state, their total, and the max_connections line.

    A live run has no PostgreSQL samples: its total is RDS's ``DatabaseConnections``
    from CloudWatch (one-minute maxima), under the same name so runs compare.
    """
    rows = run.series("postgres")
    if not rows:
        rds = run.series("rds")
        if not rds:
            return []
        out = [Series(f"db total{_resolution(rds)}", *_column(rds, "DatabaseConnections"),
                      style="points", source="rds.DatabaseConnections")]
        fallback = run.stack.get("max_connections")
        if isinstance(fallback, int) and not isinstance(fallback, bool):
            xs = [float(r["elapsed_s"]) for r in rds]
            out.append(Series("max_connections", xs, [float(fallback)] * len(xs),
                              style="limit", source="stack.max_connections"))
        return out
    out = [Series(f"db {state or 'unknown'}", *_mapping_series(rows, "db_by_state", state),
                  style="area", source=f"postgres.db_by_state.{state}")
           for state in _mapping_keys(rows, "db_by_state")]
    out.append(Series("db total", *_column(rows, "db_total"), source="postgres.db_total"))
    out += _vanished(run)
    out += _limit(rows, "max_connections", "max_connections", "postgres.max_connections",
                  run.stack.get("max_connections"))
    return out


def _vanished(run: RunData) -> list[Series]:
    """Connections of reaped environments the server still holds, as their own line.

    A reaped environment's microVM is gone without closing its sockets; the
    server keeps them until its keepalive gives up (docs/lambda-vanished.md). They
    are part of the connections above, with no process behind them: drawn apart
    so the tail after a deploy or a scale-down shows for what it is.
    """
    return _simple(run, "emulator", (names.VANISHED_CONNECTIONS,),
                   {names.VANISHED_CONNECTIONS: "vanished envs' conns (no process)"})


def pooler(run: RunData) -> list[Series]:
    """PgBouncer's clients (active, waiting) and server connections, and the pool size."""
    rows = run.series("pgbouncer")
    if not any(r.get(k) for r in rows for k in names.PGBOUNCER_POOL_COUNTS):
        return []  # no client ever came: the run went straight to PostgreSQL
    out = _simple(run, "pgbouncer", names.PGBOUNCER_POOL_COUNTS,
                  {names.CL_ACTIVE: "clients active", names.CL_WAITING: "clients waiting",
                   names.SV_ACTIVE: "server active", names.SV_IDLE: "server idle",
                   names.SV_USED: "server used", names.SV_LOGIN: "server login"},
                  always=(names.CL_ACTIVE, names.CL_WAITING, names.SV_ACTIVE))
    pool = run.stack.get("default_pool_size")
    if isinstance(pool, int) and not isinstance(pool, bool):
        xs = [float(r["elapsed_s"]) for r in rows]
        out.append(Series("pool size", xs, [float(pool)] * len(xs), style="limit",
                          source="stack.default_pool_size"))
    return out


def environments(run: RunData) -> list[Series]:
    """Execution environments by state, and cold starts per sampling interval."""
    rows = run.series("emulator")
    if not rows:
        return []
    out = _simple(run, "emulator", ("env_busy", "env_frozen", "env_idle", "env_initializing",
                                    names.VANISHED_ENVIRONMENTS),
                  {"env_busy": "envs busy", "env_frozen": "envs frozen", "env_idle": "envs idle",
                   "env_initializing": "envs initializing",
                   names.VANISHED_ENVIRONMENTS: "envs vanished, conns held"},
                  always=("env_busy", "env_frozen"))
    xs, cumulative = _column(rows, "cold_starts")
    new: list[Value] = []
    previous: Value = None
    for value in cumulative:
        if value is None:
            new.append(None)
            continue
        new.append(value - previous if previous is not None else value)
        previous = value
    if any(cumulative):
        out.append(Series("cold starts", xs, new, style="bar", source="emulator.cold_starts/diff"))
    return out


def load(run: RunData) -> list[Series]:
    """Locust users, requests/s and failures/s."""
    return _simple(run, "locust", ("users", "rps", "fail_per_s"),
                   {"users": "users", "rps": "requests/s", "fail_per_s": "failures/s"},
                   always=("users", "rps"))


def latency(run: RunData) -> list[Series]:
    """Response-time percentiles of the current window, milliseconds."""
    return _simple(run, "locust", ("p50_ms", "p95_ms", "p99_ms"),
                   {"p50_ms": "p50 ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms"})


def errors(run: RunData) -> list[Series]:
    """Errors by kind, cumulative, as the client saw them and as the functions raised them.

    Both, because they differ: a function that fails at init with PostgreSQL's
    "too many clients" reaches the client as a bare HTTP 502.
    """
    out: list[Series] = []
    for collector, who in (("locust", "requests"), ("emulator", "functions"),
                           ("lambda_logs", "functions (logs)")):
        rows = run.series(collector)
        style = "points" if _resolution(rows) else "line"
        out += [Series(f"{who}: {kind}", *_mapping_series(rows, "errors_by_kind", kind),
                       style=style, source=f"{collector}.errors_by_kind.{kind}")
                for kind in _mapping_keys(rows, "errors_by_kind")]
    return out


def _resolution(rows: Sequence[Row]) -> str:
    """`` (cloudwatch, 60 s)`` for series that are not the local collectors' own."""
    source = rows[0].get("source") if rows else None
    if not source or source == "local":
        return ""
    return f" ({source}, {rows[0].get('period_s')} s)"


def _group(run: RunData, collector: str, keys: Sequence[str], always: Sequence[str]
           ) -> list[Series]:
    rows = run.series(collector)
    suffix = _resolution(rows)
    out = _simple(run, collector, keys, {k: f"{k}{suffix}" for k in keys}, always=always)
    if suffix:  # one point a period: markers, or a lone point draws nothing
        out = [dataclasses.replace(s, style="points") for s in out]
    return out


def lambda_metrics(run: RunData) -> list[Series]:
    """Lambda's CloudWatch metrics: concurrency, invocations, errors, throttles per minute."""
    return _group(run, "lambda", ("ConcurrentExecutions", "Invocations", "Errors", "Throttles",
                                  "ProvisionedConcurrencySpilloverInvocations"),
                  ("ConcurrentExecutions", "Invocations"))


def rds_proxy(run: RunData) -> list[Series]:
    """RDS Proxy's connections (CloudWatch, or the local stand-in's same-named series)."""
    # CloudWatch's metric names, which the local stand-in uses too.
    return _group(run, "rds_proxy", names.RDS_PROXY_CHART,
                  (names.CLIENT_CONNECTIONS, names.DATABASE_CONNECTIONS))


def api_gateway(run: RunData) -> list[Series]:
    """API Gateway's requests and 4xx/5xx per minute (CloudWatch)."""
    return _group(run, "apigateway", ("Count", "4xx", "5xx"), ("Count",))


CHARTS: tuple[Chart, ...] = (
    Chart("db", "DB connections", db_connections, "no PostgreSQL samples"),
    Chart("pooler", "pooler", pooler, "no pooler in this run"),
    Chart("environments", "environments", environments, "no emulator samples"),
    Chart("load", "users, req/s", load, "no Locust samples"),
    Chart("latency", "latency ms", latency, "no responses"),
    Chart("errors", "errors (cumulative)", errors, "no errors"),
    Chart("lambda", "Lambda (CloudWatch)", lambda_metrics, "no Lambda metrics"),
    Chart("rds_proxy", "RDS Proxy", rds_proxy, "no RDS Proxy in this run"),
    Chart("apigateway", "API Gateway (CloudWatch)", api_gateway, "no API Gateway metrics"),
)
