"""Check a run against its scenario's ``[thresholds]``: one verdict per limit.

Pure logic over ``summary.json``'s variant figures, so CI, ``connstorm run``
and the reports all agree on what passed. A limit the run has no figure for
(``p95_ms`` of a run without a single request) fails: a threshold that cannot
be checked must not pass silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from connstorm.scenario import ThresholdsConfig


class Verdict(TypedDict):
    """One threshold's result, as ``summary.json`` lists it."""

    name: str
    limit: float
    actual: float | None
    passed: bool


def _total(variants: Sequence[Mapping[str, Any]], key: str) -> float:
    return float(sum(v.get(key) or 0 for v in variants))


def _worst(variants: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [float(v[key]) for v in variants if v.get(key) is not None]
    return max(values) if values else None


def check_thresholds(config: ThresholdsConfig,
                     variants: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Verdicts of every threshold set in ``config``, over all variants of a run.

    Counts are summed over variants; latencies and connection peaks take the
    worst variant; ``min_rps`` the slowest.
    """
    out: list[Verdict] = []

    def add(name: str, limit: float, actual: float | None, ok: bool) -> None:
        out.append(Verdict(name=name, limit=limit,
                           actual=None if actual is None else round(actual, 6), passed=ok))

    requests = _total(variants, "requests")
    if config.max_fail_ratio is not None:
        ratio = _total(variants, "failures") / requests if requests else None
        add("max_fail_ratio", config.max_fail_ratio, ratio,
            ratio is not None and ratio <= config.max_fail_ratio)
    for name, key in (("p95_ms", "p95_ms"), ("p99_ms", "p99_ms")):
        limit = getattr(config, name)
        if limit is not None:
            actual = _worst(variants, key)
            add(name, limit, actual, actual is not None and actual <= limit)
    if config.min_rps is not None:
        rates = [float(v["rps"]) for v in variants if v.get("rps") is not None]
        slowest = min(rates) if rates else None
        add("min_rps", config.min_rps, slowest, slowest is not None and slowest >= config.min_rps)
    if config.max_db_connections is not None:
        peak = _worst(variants, "peak_db_connections")
        add("max_db_connections", config.max_db_connections, peak,
            peak is not None and peak <= config.max_db_connections)
    for kind, limit in config.max_errors.items():
        count = float(sum((v.get("errors_by_kind") or {}).get(kind, 0) for v in variants))
        add(kind, limit, count, count <= limit)
    return out


def failed(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that did not pass."""
    return [v for v in verdicts if not v["passed"]]


def describe(verdict: Verdict) -> str:
    """One line for a verdict, saying by how much a failed one missed."""
    name, limit, actual = verdict["name"], verdict["limit"], verdict["actual"]
    if actual is None:
        return f"{name}: no data to check against limit {limit:g}"
    lower_bound = name == "min_rps"
    status = "ok" if verdict["passed"] else "FAILED"
    text = f"{name}: {actual:g} (limit {'>=' if lower_bound else '<='} {limit:g}) {status}"
    if not verdict["passed"]:
        text += f", off by {abs(actual - limit):g}"
    return text
