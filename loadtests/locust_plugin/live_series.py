"""What the live view shows of the stack: its series, and which of them a run has at all.

The Connections tab and the live chart (:mod:`.web`) show what the stack runs,
not every series connstorm knows:

* the RDS Proxy stand-in's series when it runs (``rds_proxy`` rows): client
  connections against database connections, the ones lent now and the ones
  pinned, the pool's bound, the multiplexing ratio (client connections per
  database connection: what the proxy is for, and what pinning takes away),
  borrow timeouts per second, and the pin reasons seen so far, each with a
  sample statement (the stand-in logs them in RDS Proxy's own words, AWS RDS
  User Guide, "Avoiding pinning an RDS Proxy");
* PgBouncer's series only when PgBouncer carries traffic (:func:`pooler_carries_traffic`):
  a stack starts PgBouncer whenever ``[pgbouncer] enabled``, and a flat zero
  line for a pooler no function uses reads as "the pooler holds nothing";
* the connections of vanished environments (``vanished_connections`` of the
  emulator row: reaped environments whose sockets the database still holds)
  once there are any.

Pure (no Locust, no Flask), so every rule is tested on rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connstorm import metric_names as names

#: Most recent rows per series the chart data route returns.
MAX_POINTS = 3600
#: Pin reasons the tab lists (the most frequent).
MAX_PIN_ROWS = 8

Row = Mapping[str, Any]

#: (series, collector, keys summed into it): plain series of one collector.
PLAIN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("users", "locust", ("users",)),
    ("rps", "locust", ("rps",)),
    ("fail_per_s", "locust", ("fail_per_s",)),
    ("db_total", "postgres", ("db_total",)),
    ("db_app", "postgres", ("db_app",)),
    ("max_connections", "postgres", ("max_connections",)),
    ("pooler_clients", "pgbouncer", names.PGBOUNCER_CLIENTS),
    ("pooler_waiting", "pgbouncer", (names.CL_WAITING,)),
    ("pooler_servers", "pgbouncer", names.PGBOUNCER_SERVERS),
    ("environments", "emulator", (names.ENV_TOTAL,)),
    ("env_busy", "emulator", (names.ENV_BUSY,)),
    ("env_frozen", "emulator", ("env_frozen",)),
    ("vanished_connections", "emulator", (names.VANISHED_CONNECTIONS,)),
    ("proxy_clients", "rds_proxy", (names.CLIENT_CONNECTIONS,)),
    ("proxy_database", "rds_proxy", (names.DATABASE_CONNECTIONS,)),
    ("proxy_borrowed", "rds_proxy", (names.DATABASE_CONNECTIONS_BORROWED,)),
    ("proxy_pinned", "rds_proxy", (names.DATABASE_CONNECTIONS_PINNED,)),
    ("proxy_max", "rds_proxy", (names.MAX_DATABASE_CONNECTIONS,)),
)
#: Series derived from a collector's rows: the ratio and the timeouts' rate.
DERIVED = ("proxy_ratio", "borrow_timeouts_per_s")


def _ok(rows: Iterable[Row], collector: str) -> list[Row]:
    return [r for r in rows if r.get("collector") == collector and r.get("ok")]


def _num(row: Row, key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def pooler_carries_traffic(rows: Sequence[Row]) -> bool:
    """Whether PgBouncer served anyone in these ``pgbouncer`` rows.

    A client at a sampled moment, or transactions counted between the first
    row and the last: a burst between two samples still moves the counter.
    """
    pooled = _ok(rows, "pgbouncer")
    if any(_num(r, names.CL_ACTIVE) + _num(r, names.CL_WAITING) > 0 for r in pooled):
        return True
    return bool(pooled) and (_num(pooled[-1], names.TOTAL_XACT_COUNT)
                             > _num(pooled[0], names.TOTAL_XACT_COUNT))


@dataclass
class PoolerTraffic:
    """:func:`pooler_carries_traffic` for a live tab fed one latest row at a time."""

    first_xacts: float | None = None
    seen: bool = False

    def update(self, row: Row | None) -> bool:
        """Take the newest ``pgbouncer`` row (any, gaps included); whether traffic was seen."""
        if row is None or not row.get("ok"):
            return self.seen
        xacts = _num(row, names.TOTAL_XACT_COUNT)
        if self.first_xacts is None:
            self.first_xacts = xacts
        if _num(row, names.CL_ACTIVE) + _num(row, names.CL_WAITING) > 0 \
                or xacts > self.first_xacts:
            self.seen = True
        return self.seen


def multiplexing_ratio(row: Row) -> float | None:
    """Client connections per database connection; None while the proxy holds none."""
    database = _num(row, names.DATABASE_CONNECTIONS)
    if database <= 0:
        return None
    return round(_num(row, names.CLIENT_CONNECTIONS) / database, 2)


def pin_reasons(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Pin reasons seen so far in ``rds_proxy`` rows, most frequent first.

    ``{reason, count, sample}``. The stand-in's counts are cumulative; the
    largest seen per reason is kept, so a proxy restart (which counts from zero
    again) loses nothing.
    """
    return merged_reasons(r for r in rows if r.get("collector") == "rds_proxy")


def merged_reasons(proxy_rows: Iterable[Row]) -> list[dict[str, Any]]:
    """:func:`pin_reasons` of rows known to be the proxy's (a collector's latest row)."""
    counts: dict[str, int] = {}
    samples: dict[str, str] = {}
    for row in proxy_rows:
        reasons = row.get(names.PIN_REASONS)
        if not isinstance(reasons, Mapping):
            continue
        for reason, entry in reasons.items():
            if isinstance(entry, Mapping):
                counts[reason] = max(counts.get(reason, 0), int(_num(entry, "count")))
                if entry.get("sample") and reason not in samples:
                    samples[reason] = str(entry["sample"])
    return [{"reason": reason, "count": count, "sample": samples.get(reason, "")}
            for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _series(points: Sequence[Row], values: Sequence[float | None]) -> dict[str, list[Any]]:
    return {"x": [r["elapsed_s"] for r in points], "y": list(values)}


def chart_series(rows: Sequence[Row]) -> dict[str, Any]:
    """The live chart's data: series, what the stack runs, the pin reasons."""
    traffic = pooler_carries_traffic(rows)
    by_collector: dict[str, list[Row]] = {}
    for collector in {c for _, c, _ in PLAIN}:
        by_collector[collector] = _ok(rows, collector)[-MAX_POINTS:]
    series: dict[str, dict[str, list[Any]]] = {}
    for name, collector, keys in PLAIN:
        points = by_collector[collector]
        if collector == "pgbouncer" and not traffic:
            points = []
        if name == "vanished_connections" and not any(
                _num(r, names.VANISHED_CONNECTIONS) for r in points):
            points = []  # shown once there are any
        series[name] = _series(points, [sum(_num(r, k) for k in keys) for r in points])
    proxy = by_collector["rds_proxy"]
    series["proxy_ratio"] = _series(proxy, [multiplexing_ratio(r) for r in proxy])
    rates: list[float | None] = []
    for previous, row in zip([None, *proxy], proxy, strict=False):
        if previous is None:
            rates.append(0.0)
            continue
        dt = _num(row, "elapsed_s") - _num(previous, "elapsed_s")
        grown = max(0.0, _num(row, names.BORROW_TIMEOUTS) - _num(previous, names.BORROW_TIMEOUTS))
        rates.append(round(grown / dt, 2) if dt > 0 else 0.0)
    series["borrow_timeouts_per_s"] = _series(proxy, rates)
    return {"series": series,
            "runs": {"rds_proxy": bool(proxy), "pgbouncer": bool(by_collector["pgbouncer"]),
                     "pgbouncer_traffic": traffic,
                     "vanished": bool(series["vanished_connections"]["x"])},
            "pin_reasons": pin_reasons(rows)}


def proxy_tab_rows(row: Row) -> list[tuple[str, Any]]:
    """The Connections tab's RDS Proxy figures from its latest row: (figure, value)."""
    ratio = multiplexing_ratio(row)
    reasons = merged_reasons([row])
    out: list[tuple[str, Any]] = [
        ("client connections / database connections (pool bound)",
         f"{int(_num(row, names.CLIENT_CONNECTIONS))} / "
         f"{int(_num(row, names.DATABASE_CONNECTIONS))} "
         f"({int(_num(row, names.MAX_DATABASE_CONNECTIONS))})"),
        ("multiplexing: client connections per database connection",
         "–" if ratio is None else f"{ratio:g}"),
        ("database connections borrowed / pinned",
         f"{int(_num(row, names.DATABASE_CONNECTIONS_BORROWED))} / "
         f"{int(_num(row, names.DATABASE_CONNECTIONS_PINNED))}"),
        ("borrow timeouts so far", int(_num(row, names.BORROW_TIMEOUTS))),
    ]
    for entry in reasons[:MAX_PIN_ROWS]:
        sample = f", e.g. {entry['sample']}" if entry.get("sample") else ""
        out.append((f"pinned: {entry['reason']}", f"{entry['count']} sessions{sample}"))
    if len(reasons) > MAX_PIN_ROWS:
        out.append((f"pinned: {len(reasons) - MAX_PIN_ROWS} more reasons",
                    sum(int(e["count"]) for e in reasons[MAX_PIN_ROWS:])))
    return out
