"""Reading summary.json for renderers: variants, thresholds and one-line verdicts.

summary.json is a contract (``docs/run-folder.md``) but a run killed half way,
or an older connstorm, may leave keys out; every renderer goes through these
helpers so a missing key shows as a dash instead of breaking the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connstorm.reports.budget import budget_text

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
    items = sorted(((str(k), v) for k, v in errors.items() if v), key=lambda kv: -_num(kv[1]))
    return ", ".join(f"{k} {fmt(v)}" for k, v in items) or "none"


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


def verdict(variant: Mapping[str, Any]) -> str:
    """One line saying what happened to a variant (prefixed when it was cut short).

    Through an RDS Proxy, the multiplexing and the pins
    (:func:`connstorm.reports.pinning.pinning_text`) follow it; when the run had
    provisioned concurrency, deploys, keep-warm pings or VPC refusals,
    :func:`lifecycle_text` follows it; when it had a ``[[timeline]]``,
    what the pattern did after each action (:func:`connstorm.reports.timeline.recovery_text`);
    last, the connection budget: needed against had, and what fits
    (:func:`connstorm.reports.budget.budget_text`).
    """
    from connstorm.reports.pinning import pinning_text  # both build on this module's helpers
    from connstorm.reports.timeline import recovery_text

    line = _verdict(variant)
    pins = pinning_text(variant)
    if pins:
        line = f"{line}; {pins}"
    lifecycle = lifecycle_text(variant)
    if lifecycle:
        line = f"{line}; {lifecycle}"
    vanished = vanished_text(variant)
    if vanished:
        line = f"{line}; {vanished}"
    recovery = recovery_text(variant)
    if recovery:
        line = f"{line}; {recovery}"
    budget = budget_text(variant.get("connection_budget"))
    if budget:
        line = f"{line}; budget: {budget}"
    return f"INTERRUPTED, so far {line}" if variant.get("interrupted") else line


def lifecycle_text(variant: Mapping[str, Any]) -> str:
    """What the Lambda lifecycle did to the connections (``lambda_lifecycle``), or ""."""
    life = variant.get("lambda_lifecycle")
    if not isinstance(life, Mapping):
        return ""
    parts = []
    if _num(life.get("provisioned_concurrency")):
        use = life.get("provisioned_utilization")
        use = use if isinstance(use, Mapping) else {}
        parts.append(f"provisioned concurrency {fmt(life.get('provisioned_concurrency'))} held "
                     f"{fmt(life.get('baseline_db_connections'))} DB connections before any "
                     f"request (utilisation mean {_percent(use.get('mean'))}, max "
                     f"{_percent(use.get('max'))}; {fmt(life.get('spillover_invocations'))} "
                     f"spillover invocations)")
    if _num(life.get("deploys")):
        parts.append(f"{fmt(life.get('deploys'))} deploy(s): up to "
                     f"{fmt(life.get('peak_superseded_environments'))} environments of the old "
                     f"version stayed connected beside the new ones (peak DB "
                     f"{fmt(variant.get('peak_db_connections'))})")
    if _num(life.get("scheduled_invocations")):
        parts.append(f"{fmt(life.get('scheduled_invocations'))} scheduled pings")
    if _num(life.get("rejections")):
        parts.append(f"{fmt(life.get('rejections'))} invocations refused by the VPC set-up")
    return "; ".join(parts)


def vanished_text(variant: Mapping[str, Any]) -> str:
    """The connections reaped environments left open at the server, or "".

    Lambda reclaims an environment without a signal; its connections stay open at
    the server until its keepalive gives up (docs/lambda-vanished.md). Refusals
    while they were held are the tail users see after a deploy or a scale-down.
    """
    held = _num(variant.get("peak_vanished_connections"))
    if not held:
        return ""
    text = (f"up to {fmt(held)} connection{'s' if held != 1 else ''} of reaped "
            f"environments stayed open at the server with no process behind them (the "
            f"microVM vanished; they go only when the server's keepalive gives up)")
    life = variant.get("lambda_lifecycle")
    refused = _num(life.get("refused_while_vanished")) if isinstance(life, Mapping) else 0.0
    if refused:
        text += (f"; {fmt(refused)} invocation{'s' if refused != 1 else ''} were refused "
                 f"(too_many_connections) while they held their slots: the tail of a deploy "
                 f"or scale-down")
    return text


def _percent(value: Any) -> str:
    return f"{_num(value):.0%}" if isinstance(value, int | float) else DASH


def _verdict(variant: Mapping[str, Any]) -> str:
    """One line saying what happened to a variant, most important fact first.

    It starts with one word in capitals (REFUSED, ERRORS, THRESHOLDS BROKEN, NO
    DATA, OK): what happened, which is not the same as whether the run's
    thresholds passed (a demonstration of the failure passes when it fails).
    """
    errors = variant.get("errors_by_kind")
    errors = errors if isinstance(errors, Mapping) else {}
    functions = variant.get("function_errors_by_kind")
    functions = functions if isinstance(functions, Mapping) else {}
    # A function refused at init reaches the client as a bare 502: count both sides.
    refused = max(_num(errors.get("too_many_connections")),
                  _num(functions.get("too_many_connections")))
    failures = _num(variant.get("failures"))
    requests = _num(variant.get("requests"))
    peak = fmt(variant.get("peak_db_connections"))
    limit = fmt(variant.get("max_connections"))
    broken = [str(t.get("name")) for t in thresholds(variant) if t.get("passed") is False]
    if refused:
        return (f"REFUSED: the database refused connections ({fmt(refused)} "
                f"too_many_connections); peak {peak} of max_connections {limit}")
    if failures:
        kinds = functions or errors
        top = max(kinds.items(), key=lambda kv: _num(kv[1]))[0] if kinds else "unclassified"
        share = f"{failures / requests:.1%} of requests" if requests else "requests"
        line = f"ERRORS: {fmt(failures)} failed ({share}), mostly {top}; peak DB {peak} of {limit}"
        waiting = _num(variant.get("peak_pooler_waiting"))
        if variant.get("db_path") == "pgbouncer" and waiting:
            line += (f"; up to {fmt(waiting)} client{'s' if waiting != 1 else ''} waited for "
                     f"{fmt(variant.get('peak_pooler_server_connections'))} server connections "
                     f"(pool {fmt(variant.get('pool_size'))})")
        return line
    if variant.get("passed") is False or broken:
        return f"THRESHOLDS BROKEN: {', '.join(broken) or 'see the table'}"
    if not requests:
        return "NO DATA: no requests were made"
    if variant.get("db_path") == "pgbouncer":
        waiting = _num(variant.get("peak_pooler_waiting"))
        queued = (f", up to {fmt(waiting)} client{'s' if waiting != 1 else ''} waiting"
                  if waiting else "")
        return (f"OK: no failures; pooler held the database to "
                f"{fmt(variant.get('peak_pooler_server_connections'))} server connections "
                f"(pool {fmt(variant.get('pool_size'))}){queued}; peak {peak} of {limit}")
    return f"OK: no failures; peak {peak} of max_connections {limit} DB connections"


def overall_passed(summary: Mapping[str, Any] | None) -> bool | None:
    """The run's verdict: summary's ``passed`` if given, else from its thresholds."""
    passed = (summary or {}).get("passed")
    if isinstance(passed, bool):
        return passed
    results = [t.get("passed") for _, t in all_thresholds(summary)]
    if not results or any(r is None for r in results):
        return None
    return all(bool(r) for r in results)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def names(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``name`` of each item."""
    return [str(i.get("name", "")) for i in items]
