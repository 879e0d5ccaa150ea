"""Reading summary.json for renderers: variants, thresholds, cells and their verdicts.

summary.json is a contract (``docs/run-folder.md``) but a run killed half way,
or an older connstorm, may leave keys out; every renderer goes through these
helpers so a missing key shows as a dash instead of breaking the report. The
one line a variant's verdict takes is :mod:`connstorm.reports.verdict_line`'s,
above this module, because its parts come from the pinning and timeline sections
which build on these helpers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DASH = "–"

#: The columns of the verdict table, in order: (summary key, heading).
VARIANT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("requests", "requests"),
    ("failures", "failures"),
    ("errors_by_kind", "errors by kind"),
    ("peak_db_connections", "peak DB conns / max"),
    ("peak_pooler_clients", "peak pooler clients"),
    ("peak_pooler_server_connections", "pooler server conns / pool"),
    ("peak_environments", "peak envs"),
    ("peak_concurrency", "peak concurrency"),
    ("cold_starts", "cold starts"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("rps", "req/s"),
)


def variants(summary: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The summary's variant entries (possibly none)."""
    raw = (summary or {}).get("variants")
    return [v for v in raw if isinstance(v, Mapping)] if isinstance(raw, list) else []


def thresholds(holder: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The threshold results of a summary or of one variant entry."""
    raw = (holder or {}).get("thresholds")
    return [t for t in raw if isinstance(t, Mapping)] if isinstance(raw, list) else []


def all_thresholds(summary: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(variant name or "", threshold) for the summary's own and every variant's thresholds."""
    out: list[tuple[str, Mapping[str, Any]]] = [("", t) for t in thresholds(summary)]
    for variant in variants(summary):
        out.extend((str(variant.get("name", "")), t) for t in thresholds(variant))
    return out


def decides_alone(summary: Mapping[str, Any] | None) -> bool:
    """True when the summary's own thresholds alone decide its verdict.

    So it is when the summary states ``passed`` and has thresholds of its own:
    ``connstorm repro``, whose expectations decide, while each variant's own
    thresholds only describe it (and the failure variants are meant to break them).
    """
    doc = summary or {}
    return isinstance(doc.get("passed"), bool) and bool(thresholds(doc))


def expected_failure_text(variant: Mapping[str, Any], threshold: Mapping[str, Any]) -> str:
    """Whether a variant's own threshold was meant to fail, and whether that happened."""
    if threshold.get("passed") is not False:
        return "no"
    return "yes, as intended" if variant.get("expected_to_fail") else "no: not expected"


def fmt(value: Any, digits: int = 1) -> str:
    """A number as a report shows it: integers plain, floats rounded, None as a dash."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if abs(value) < 0.1:
            return f"{value:.3g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def errors_text(errors: Any) -> str:
    """``{"too_many_connections": 480, "other": 2}`` as ``too_many_connections 480, other 2``."""
    if not isinstance(errors, Mapping) or not errors:
        return "none"
    items = sorted(((str(k), v) for k, v in errors.items() if v), key=lambda kv: -number(kv[1]))
    return ", ".join(f"{k} {fmt(v)}" for k, v in items) or "none"


#: Through RDS Proxy the pooler's columns are the proxy's (as a live run's are, read
#: from CloudWatch): its client connections, and its database connections against its
#: pool (``MaxDatabaseConnectionsAllowed``); PgBouncer, unused, would read 0 and "0 / –".
PROXY_CELLS: dict[str, tuple[str, str | None]] = {
    "peak_pooler_clients": ("peak_proxy_client_connections", None),
    "peak_pooler_server_connections": ("peak_proxy_database_connections",
                                       "proxy_max_connections"),
}


def cell(variant: Mapping[str, Any], key: str) -> str:
    """One cell of the verdict table."""
    if key == "errors_by_kind":
        functions = variant.get("function_errors_by_kind")
        if isinstance(functions, Mapping) and functions:
            return (f"requests: {errors_text(variant.get(key))}; "
                    f"functions: {errors_text(functions)}")
        return errors_text(variant.get(key))
    if key == "peak_db_connections":
        return f"{fmt(variant.get(key))} / {fmt(variant.get('max_connections'))}"
    if variant.get("db_path") == "rds_proxy" and key in PROXY_CELLS:
        peak, bound = PROXY_CELLS[key]
        if variant.get(peak) is not None:
            shown = fmt(variant.get(peak))
            return f"{shown} / {fmt(variant.get(bound))}" if bound else shown
    if key == "peak_pooler_server_connections":
        if variant.get("db_path") == "direct" or variant.get(key) is None:
            return DASH
        return f"{fmt(variant.get(key))} / {fmt(variant.get('pool_size'))}"
    if key == "peak_pooler_clients" and variant.get("db_path") == "direct":
        return DASH
    return fmt(variant.get(key))


def passed_text(passed: Any) -> str:
    """PASS, FAIL, or a dash when unknown."""
    if passed is None:
        return DASH
    return "PASS" if passed else "FAIL"


def threshold_line(threshold: Mapping[str, Any]) -> str:
    """``max_fail_ratio: limit 0.01 (at most), actual 0.42``: what a failure message says."""
    name = str(threshold.get("name", "?"))
    bound = threshold.get("bound") or ("at least" if name.startswith("min_") else "at most")
    return (f"{name}: limit {fmt(threshold.get('limit'), 3)} ({bound}), "
            f"actual {fmt(threshold.get('actual'), 3)}")


def overall_passed(summary: Mapping[str, Any] | None) -> bool | None:
    """The run's verdict: summary's ``passed`` if given, else from its thresholds."""
    passed = (summary or {}).get("passed")
    if isinstance(passed, bool):
        return passed
    results = [t.get("passed") for _, t in all_thresholds(summary)]
    if not results or any(r is None for r in results):
        return None
    return all(bool(r) for r in results)


def number(value: Any) -> float:
    """A summary value as a float; anything not a number (or a bool) is 0."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def names(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``name`` of each item."""
    return [str(i.get("name", "")) for i in items]
